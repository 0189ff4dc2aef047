// Command noop exits at once: the baseline process for `crun run` in the
// cold-start benchmark.
package main

func main() {}
