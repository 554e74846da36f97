package main

import (
	"strings"
	"testing"
)

func TestRedactURL(t *testing.T) {
	tests := []struct {
		url, want string
		secrets   []string // must not survive in any text
	}{
		{"redis://user:s3cretPass@host:6379/0", "redis://user:xxxxx@host:6379/0", []string{"s3cretPass"}},
		{"redis://:s3cretPass@host:6379", "redis://:xxxxx@host:6379", []string{"s3cretPass"}},
		{"rediss://default:p%40ss%2Fw0rd@host/0?master_name=m&password=hunter22&db=1", "rediss://default:xxxxx@host/0?master_name=m&password=xxxxx&db=1",
			[]string{"p%40ss%2Fw0rd", "p@ss/w0rd", "hunter22"}},
		{"postgres://u:Pg!pass@h:5432/db?sslmode=verify-full&sslpassword=keyp4ss", "postgres://u:xxxxx@h:5432/db?sslmode=verify-full&sslpassword=xxxxx", []string{"Pg!pass", "keyp4ss"}},
		{"mongodb+srv://admin:M0ng0Pw@cluster0.example.net/db?authSource=admin&retryWrites=true", "mongodb+srv://admin:xxxxx@cluster0.example.net/db?authSource=admin&retryWrites=true", []string{"M0ng0Pw"}},
		{"s3://bucket/prefix?endpoint=http%3A%2F%2F127.0.0.1%3A9000&token=abcd1234&X-Amz-Signature=deadbeef&sas=sv%3D2020%26sig%3Dzz99#frag", "s3://bucket/prefix?endpoint=http%3A%2F%2F127.0.0.1%3A9000&token=xxxxx&X-Amz-Signature=xxxxx&sas=xxxxx#frag",
			[]string{"abcd1234", "deadbeef", "sv%3D2020%26sig%3Dzz99", "sv=2020&sig=zz99"}},
		{"redis://u:pa ss word@h:xx/0", "redis://u:xxxxx@h:xx/0", []string{"pa ss word"}}, // url.Parse refuses it
		{"file:///var/lib/wwebstore", "file:///var/lib/wwebstore", nil},
		{"mem://", "mem://", nil},
		{"postgres://user@h/db", "postgres://user@h/db", nil},
	}
	for _, tt := range tests {
		r := newRedactor()
		if got := r.addURL(tt.url); got != tt.want {
			t.Errorf("addURL(%q) = %q, want %q", tt.url, got, tt.want)
		}
		// A driver may quote the URL whole, its password alone, or its escaped forms.
		msg := "open " + tt.url + ": auth failed for " + strings.Join(tt.secrets, " and ") + "; again: " + tt.want
		got := r.String(msg)
		for _, s := range tt.secrets {
			if strings.Contains(got, s) {
				t.Errorf("String(%q) = %q: the secret %q survived", msg, got, s)
			}
		}
		if !strings.Contains(got, "open "+tt.want+": ") || !strings.HasSuffix(got, "again: "+tt.want) {
			t.Errorf("String(%q) = %q: the redacted URL %q is not kept whole", msg, got, tt.want)
		}
	}
}

// TestRedactedOutput runs commands whose stores fail, and whose error messages quote the URL or
// the password (a URL that does not parse is quoted whole by net/url), and checks that no
// secret reaches stdout or stderr, with or without --json and -v.
func TestRedactedOutput(t *testing.T) {
	const secret = "TopSecret99"
	urls := []string{
		"redis://default:" + secret + "@127.0.0.1:1/0",
		"redis://default:" + secret + "@127.0.0.1:99999x/0",
		"postgres://wwebstore:" + secret + "@127.0.0.1:1/db?sslmode=disable&connect_timeout=2",
		"postgres://wwebstore@127.0.0.1:1/db?password=" + secret + "&sslmode=disable",
		"mongodb://admin:" + secret + "@127.0.0.1:1/db?serverSelectionTimeoutMS=500&connectTimeoutMS=500",
		"redis://default:" + secret + "@127.0.0.1:1/0?nosuchoption=1",
	}
	var h harness
	for _, url := range urls {
		for _, extra := range [][]string{nil, {"--json"}, {"-v"}} {
			args := append([]string{"exists", "--store", url, "--session", "RemoteAuth-a"}, extra...)
			r := h.run(t, "", args...)
			if r.code != exitFailure {
				t.Errorf("wwebstore %q: want exit code 1, got %s", args, r)
			}
			if strings.Contains(r.stdout+r.stderr, secret) {
				t.Errorf("wwebstore %q printed the secret: %s", args, r)
			}
			if !strings.Contains(r.stderr, "xxxxx") {
				t.Errorf("wwebstore %q: the error does not show the redacted URL: %s", args, r)
			}
		}
	}
}
