// Command callflow answers 8x8 number-masking voice webhooks.
//
//	callflow serve      all in one: embedded NATS, ingestor, deciders, admin API
//	callflow ingest     the webhook ingestor, against --nats-url
//	callflow decider    deciders, against --nats-url (start as many as needed)
//	callflow sessions   create, get, list, update, close and delete masking sessions
//	callflow numbers    add, get, list and remove the pool's virtual numbers
//	callflow version    print the version
//
// Every flag can also be set with an environment variable
// CALLFLOW_<FLAG_IN_UPPER_SNAKE>; `callflow <command> --help` lists them.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
