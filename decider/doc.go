// Package decider is the call policy: it answers "what do we do with this
// call?" for the ingestors, as a NATS micro service in a queue group, so
// that any number of deciders on any number of machines share the work and
// `nats micro ls` shows them.
//
// The policy is number masking: a caller who is a participant of an open
// session on the virtual number dialled is connected to the other
// participant; anyone else hears the out-of-session message.
package decider
