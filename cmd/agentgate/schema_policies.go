package main

import "github.com/agentgate/agentgate/policies"

// The contract files' schemas, published by `agentgate schema NAME`.
func init() {
	for _, name := range policies.SchemaNames() {
		registerSchema(name, policies.Schema(name))
	}
}
