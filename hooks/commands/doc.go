// Package commands parses and handles the comment commands agentgate
// answers on pull requests: /approve-promotion [sha], /hold, /unhold,
// /recheck, /resume-run PLAN_ID and /approve-budget PLAN_ID.
//
// A command counts only from a newly created comment on a pull request, at
// the start of a line, outside quotes, fenced or indented code blocks and
// HTML comments. The Dispatcher re-reads the comment through the API, hands
// each command line to its Handler (one file per command, each with its own
// narrow client interface and a help text that says who may use it), then
// acknowledges with a reaction and answers every refusal in words.
//
// The webhook layer calls Dispatcher.HandleComment (the CommandHandler
// interface) for issue_comment events; the decisions themselves live in
// gate/approval and gate/ladder.
package commands
