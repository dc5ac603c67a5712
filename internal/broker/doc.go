// Package broker holds what every role does with NATS before its own work:
// connecting (or starting an embedded server for the all-in-one), and making
// sure the records stream exists.
package broker
