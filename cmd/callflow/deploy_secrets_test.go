package main

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// secretMount is where the manifests mount callflow-secrets.
const secretMount = "/run/secrets/callflow/"

// documentedSecretCommands returns every `kubectl create secret generic
// callflow-secrets` command of the guides (deploy/k8s/README.md, the
// placeholder secret.yaml's comment, README.md, OPERATIONS.md), each as
// the keys it creates, by where it is.
func documentedSecretCommands(t *testing.T) map[string][]string {
	t.Helper()
	key := regexp.MustCompile(`--from-(?:literal|file)=([A-Za-z0-9._-]+)=`)
	out := map[string][]string{}
	for _, f := range []string{"../../README.md", "../../OPERATIONS.md", filepath.Join(deployDir, "k8s", "README.md"), filepath.Join(deployDir, "k8s", "secret.yaml")} {
		b, err := os.ReadFile(f)
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		// A command runs from "create secret generic callflow-secrets" to
		// its last continued line.
		text := strings.ReplaceAll(string(b), "\n#", "\n") // secret.yaml's comment
		for i, part := range strings.Split(text, "create secret generic callflow-secrets")[1:] {
			var cmd []string
			for _, line := range strings.Split(part, "\n") {
				cmd = append(cmd, line)
				if !strings.HasSuffix(strings.TrimSpace(line), `\`) {
					break
				}
			}
			var keys []string
			for _, m := range key.FindAllStringSubmatch(strings.Join(cmd, "\n"), -1) {
				keys = append(keys, m[1])
			}
			out[filepath.Base(f)+" command "+string(rune('1'+i))] = keys
		}
	}
	return out
}

// TestDeployK8sSecretKeys: every key of callflow-secrets a manifest reads
// (a file under the secret's mount, or a secretKeyRef) is in the
// placeholder secret.yaml and in every documented `kubectl create secret`
// command, so pods never wait on a key the guides left out; a mount of
// the secret that is not optional fails the pod when a key is missing.
func TestDeployK8sSecretKeys(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(deployDir, "k8s", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	used := map[string][]string{} // key -> manifests
	ref := regexp.MustCompile(regexp.QuoteMeta(secretMount) + `([A-Za-z0-9._-]+)`)
	var placeholder map[string]string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if filepath.Base(f) == "secret.yaml" {
			var s struct {
				StringData map[string]string `yaml:"stringData"`
			}
			if err := yaml.Unmarshal(b, &s); err != nil {
				t.Fatal(err)
			}
			placeholder = s.StringData
			continue
		}
		for _, m := range ref.FindAllStringSubmatch(string(b), -1) {
			used[m[1]] = append(used[m[1]], filepath.Base(f))
		}
		var walk func(v any)
		walk = func(v any) {
			switch v := v.(type) {
			case map[string]any:
				if r, ok := v["secretKeyRef"].(map[string]any); ok && r["name"] == "callflow-secrets" {
					if k, ok := r["key"].(string); ok {
						used[k] = append(used[k], filepath.Base(f))
					}
				}
				for _, e := range v {
					walk(e)
				}
			case []any:
				for _, e := range v {
					walk(e)
				}
			}
		}
		dec := yaml.NewDecoder(strings.NewReader(string(b)))
		for {
			var doc any
			if dec.Decode(&doc) != nil {
				break
			}
			walk(doc)
		}
	}
	if len(used) == 0 {
		t.Fatal("no manifest reads callflow-secrets: the test reads them wrong")
	}
	commands := documentedSecretCommands(t)
	if len(commands) == 0 {
		t.Fatal("no guide documents `kubectl create secret generic callflow-secrets`")
	}
	for key, in := range used {
		if _, ok := placeholder[key]; !ok {
			t.Errorf("%v read key %q of callflow-secrets; secret.yaml does not show it", slices.Compact(in), key)
		}
		for where, keys := range commands {
			if !slices.Contains(keys, key) {
				t.Errorf("%v read key %q of callflow-secrets; %s (%v) does not create it", slices.Compact(in), key, where, keys)
			}
		}
	}
}

// TestComposeAgreesWithGuides: the webhook secret docker-compose.yml
// defaults to is the one README's Compose section tells you to send, and
// the guides scale the deciders the same way the compose file's header
// does.
func TestComposeAgreesWithGuides(t *testing.T) {
	compose, err := os.ReadFile("../../docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	def := regexp.MustCompile(`CALLFLOW_WEBHOOK_AUTH: \$\{CALLFLOW_WEBHOOK_AUTH:-([^}]*)\}`).FindSubmatch(compose)
	if def == nil {
		t.Fatal("docker-compose.yml sets no CALLFLOW_WEBHOOK_AUTH default")
	}
	_, section, _ := strings.Cut(string(readme), "## Docker Compose\n")
	section, _, _ = strings.Cut(section, "\n## ")
	if !strings.Contains(section, `Authorization: `+string(def[1])) {
		t.Errorf("README's Compose section does not show the webhook Authorization value docker-compose.yml defaults to (%q)", def[1])
	}
	scale := regexp.MustCompile(`--scale decider=(\d+)`)
	want := scale.FindSubmatch(compose)
	if want == nil {
		t.Fatal("docker-compose.yml's header shows no --scale decider=N")
	}
	for _, m := range scale.FindAllSubmatch(readme, -1) {
		if string(m[1]) != string(want[1]) {
			t.Errorf("README scales to %s deciders, docker-compose.yml's header to %s", m[1], want[1])
		}
	}
}
