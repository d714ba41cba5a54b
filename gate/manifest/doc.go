// Package manifest defines the execution manifest (manifest.json): what one
// agent run did, as far as the producer of the manifest knows.
//
// Every field is either a known value or an explicit
// {"unknown": "<reason>"}: a producer that cannot know something (agentgate
// check does not see the agent's LLM calls; the sandbox runner does) says so
// instead of inventing a value. New starts with every field unknown, so a
// field is only ever known because a producer set it.
package manifest
