// Command callflow answers 8x8 number-masking voice webhooks.
//
//	callflow serve      all in one: embedded NATS, ingestor, deciders, archiver, admin API
//	callflow ingest     the webhook ingestor, against --nats-url
//	callflow decider    deciders, against --nats-url (start as many as needed)
//	callflow archiver   archive the records into ClickHouse; replay and schema
//	callflow sessions   create, get, list, update, close and delete masking sessions
//	callflow numbers    add, get, list and remove the pool's virtual numbers
//	callflow flows      apply, get, list and delete IVR flows; simulate a call
//	callflow config     a role's effective configuration, or the settings table
//	callflow bench      load a webhook URL and report latency and answers
//	callflow probe      a health check for containers
//	callflow version    print the version and commit of the build
//
// Every flag can also be set with an environment variable
// CALLFLOW_<FLAG_IN_UPPER_SNAKE>; `callflow <command> --help` lists them,
// and `callflow <command> <action> --help` an action's. Exit codes: 0
// success, 1 an error from the API or the work, 2 a usage error.
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
