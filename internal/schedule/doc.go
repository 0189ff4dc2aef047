// Package schedule owns scheduled invocations: EventBridge schedule
// expressions (rate, cron and at, evaluated in an IANA time zone) and the
// durable Scheduler that fires them as asynchronous invocations.
//
// # Expressions
//
// rate(1 minute|N minutes|1 hour|N hours|1 day|N days) fires every period
// from the schedule's anchor (its StartDate, else its creation time rounded
// up to a whole minute). cron(minutes hours day-of-month month day-of-week
// year) takes EventBridge's six fields with ranges, lists, steps, names
// (JAN–DEC, SUN–SAT), '?', 'L', 'W', 'LW' and '#'; exactly one of
// day-of-month and day-of-week is '?'. at(yyyy-mm-ddThh:mm:ss) fires once.
//
// Time zones follow EventBridge Scheduler: a cron time that does not exist
// (spring forward) is skipped, a time that happens twice (fall back) fires
// once, at its first occurrence; rate periods are fixed durations.
//
// # Durability
//
// Schedules live in a store.Bucket with the time of the last tick fired. A
// tick is fired (handed to the async queue with a request id derived from
// the schedule and the tick, so that the queue drops a repeat publish) and
// only then recorded. After a restart every tick missed while the server was
// down is fired once, oldest first, up to MaxCatchUp per schedule (older
// ones are skipped and logged): nothing is lost within the cap, and a tick
// is fired twice only if the server died between firing and recording it
// (at-least-once).
package schedule

import _ "time/tzdata" // time zones even on hosts without /usr/share/zoneinfo
