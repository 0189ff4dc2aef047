// Package cwlogs serves the part of the CloudWatch Logs API that reads
// functions' logs, so that the aws CLI (`aws logs filter-log-events`,
// `get-log-events`, `describe-log-streams`, v2's `aws logs tail`) and the
// SDKs' CloudWatch Logs clients read Kappa's logs unchanged, pointed at
// Kappa's address:
//
//	DescribeLogGroups   the functions' log groups (LoggingConfig.LogGroup,
//	                    /aws/lambda/<function> by default)
//	DescribeLogStreams  a group's streams
//	GetLogEvents        one stream's events, with forward and backward
//	                    tokens
//	FilterLogEvents     a group's events across streams, oldest first
//
// The protocol is AWS JSON 1.1: POST / with X-Amz-Target
// Logs_20140328.<Operation>, errors as {"__type","message"} with status
// 400. Filter patterns are CloudWatch's term patterns (every term, -term
// for none of it, a "quoted phrase" as one term, ?term for any of them);
// JSON and space-delimited patterns are refused. A page of events holds at
// most 10,000 of them and 1 MB, as in CloudWatch.
//
// A log group is the LoggingConfig.LogGroup of the functions writing to it
// now (package daemon lists them), or /aws/lambda/<function> for the logs
// of a deleted function: a function's logs follow its current group.
// Nothing here writes: Kappa's logs are the functions' own output and
// START/END/REPORT lines (package logs).
package cwlogs
