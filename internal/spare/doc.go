// Package spare owns spares: things made ahead of need for one key, kept a
// while, and handed out at most once, only to a caller asking for that same
// key. The invoker keeps created-but-not-started execution environments in
// a Pool keyed by function configuration, so that a cold start of a
// recently used configuration only starts one.
package spare
