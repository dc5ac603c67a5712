package main

import (
	"bytes"
	"context"
	"os"
	"regexp"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// helpEnv returns the environment variables `callflow <args> --help` lists.
func helpEnv(t *testing.T, args ...string) map[string]bool {
	t.Helper()
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), append(args, "--help"), &stdout, &stderr); code != 0 {
		t.Fatalf("callflow %v --help: exit %d\n%s", args, code, stderr.String())
	}
	env := map[string]bool{}
	for _, m := range regexp.MustCompile(`\[(CALLFLOW_[A-Z0-9_]+)\]`).FindAllStringSubmatch(stderr.String(), -1) {
		env[m[1]] = true
	}
	if len(env) == 0 {
		t.Fatalf("callflow %v --help lists no environment variables", args)
	}
	return env
}

// TestComposeMatchesBinary parses docker-compose.yml and checks that every
// callflow service runs a real subcommand with flags and CALLFLOW_*
// variables that subcommand accepts, and that health checks probe it.
func TestComposeMatchesBinary(t *testing.T) {
	b, err := os.ReadFile("../../docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var compose struct {
		Services map[string]struct {
			Image       string            `yaml:"image"`
			Command     []string          `yaml:"command"`
			Environment map[string]string `yaml:"environment"`
			Healthcheck struct {
				Test []string `yaml:"test"`
			} `yaml:"healthcheck"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal(b, &compose); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	roles := 0
	for name, svc := range compose.Services {
		if !strings.HasPrefix(svc.Image, "callflow") {
			continue
		}
		roles++
		t.Run(name, func(t *testing.T) {
			if len(svc.Command) == 0 {
				t.Fatal("no command")
			}
			if _, ok := commands[svc.Command[0]]; !ok {
				t.Fatalf("command %q is not a callflow subcommand", svc.Command[0])
			}
			env := helpEnv(t, svc.Command[0])
			for _, arg := range svc.Command[1:] {
				if flag, ok := strings.CutPrefix(arg, "--"); ok {
					flag, _, _ = strings.Cut(flag, "=")
					if !env[envName(flag)] {
						t.Errorf("flag --%s is not a flag of callflow %s", flag, svc.Command[0])
					}
				}
			}
			for k := range svc.Environment {
				if strings.HasPrefix(k, "CALLFLOW_") && !env[k] {
					t.Errorf("%s is not read by callflow %s", k, svc.Command[0])
				}
			}
			hc := svc.Healthcheck.Test
			if len(hc) < 3 || hc[1] != "/usr/local/bin/callflow" || hc[2] != "probe" {
				t.Errorf("health check %v does not use callflow probe", hc)
			} else if addr := svc.Environment["CALLFLOW_ADMIN_ADDR"]; addr == "" || !strings.Contains(hc[len(hc)-1], strings.TrimPrefix(addr, ":")+"/readyz") {
				t.Errorf("health check %v does not probe /readyz on the admin address %q", hc, addr)
			}
		})
	}
	if roles < 3 {
		t.Errorf("docker-compose.yml runs %d callflow services, want ingest, decider and archiver", roles)
	}
}
