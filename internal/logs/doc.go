// Package logs captures what execution environments write to stdout and
// stderr, line by line, attributes each line to the invocation running at
// the time, keeps a per-invocation tail for X-Amz-Log-Result, and appends
// every line to the function's log stream on disk.
package logs
