// Package logs owns function logs: it captures what execution environments
// write to stdout and stderr, line by line, attributes each line to the
// invocation running at the time, renders Lambda's Text or JSON log format
// with its level filters, keeps a per-invocation tail for
// X-Amz-Log-Result, and stores every line in the function's log stream on
// disk (one stream per environment) under retention by age and size. It
// serves queries and live tails of the stored lines over HTTP.
//
// Storage never slows an invocation: each environment's lines wait in a
// bounded queue for the stream's own writer goroutine, an optional
// per-environment rate limit caps chatty functions, and lines beyond
// either bound are dropped and reported by a logsDropped record.
package logs
