package main

import (
	"io"
	"maps"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// redacted replaces secrets in output.
const redacted = "xxxxx"

// minSecretLen is the length below which a secret is redacted inside the URLs that carry it but
// not searched for in free text, where replacing every occurrence of a two-letter password would
// garble the output.
const minSecretLen = 4

// secretParams are the parts of query parameter names (compared in lower case) whose values are
// secrets: password=, sslpassword=, secret=, token=, access_key=, api_key=, sig=, signature=,
// sas=, credential=, X-Amz-Signature=, …
var secretParams = []string{"pass", "pwd", "secret", "token", "key", "sig", "sas", "credential"}

func isSecretParam(name string) bool {
	name = strings.ToLower(name)
	for _, p := range secretParams {
		if strings.Contains(name, p) {
			return true
		}
	}
	return false
}

// A redactor removes the secrets of the store URLs it was given from any text: the password of
// the user information, and the values of query parameters that carry secrets (see
// secretParams). It knows each URL and each secret, so it also redacts them in error messages
// that quote the URL or only the password, as drivers may. It is safe for concurrent use.
type redactor struct {
	mu      sync.Mutex
	urls    map[string]string // raw URL → redacted URL
	secrets []string          // secrets and their escaped forms, longest first
}

func newRedactor() *redactor { return &redactor{urls: map[string]string{}} }

// userinfoRE finds the password of a URL that url.Parse refuses: scheme://user:PASSWORD@host.
var userinfoRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9+.-]*://[^/?#@:]*:([^/?#]*)@`)

// addURL registers raw's secrets and returns raw redacted: the password replaced by "xxxxx", and
// the value of every secret parameter.
func (r *redactor) addURL(raw string) string {
	var secrets []string
	shown := raw
	if m := userinfoRE.FindStringSubmatchIndex(raw); m != nil && m[3] > m[2] {
		password := raw[m[2]:m[3]]
		secrets = append(secrets, password)
		if p, err := url.PathUnescape(password); err == nil {
			secrets = append(secrets, p)
		}
		shown = raw[:m[2]] + redacted + raw[m[3]:]
	}
	if base, rest, ok := strings.Cut(shown, "?"); ok {
		query, fragment, hasFragment := strings.Cut(rest, "#")
		params := strings.Split(query, "&")
		for i, kv := range params {
			k, v, _ := strings.Cut(kv, "=")
			if name, err := url.QueryUnescape(k); err == nil && isSecretParam(name) && v != "" {
				secrets = append(secrets, v)
				if u, err := url.QueryUnescape(v); err == nil {
					secrets = append(secrets, u)
				}
				params[i] = k + "=" + redacted
			}
		}
		shown = base + "?" + strings.Join(params, "&")
		if hasFragment {
			shown += "#" + fragment
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.urls[raw] = shown
	r.urls[shown] = shown // kept as it is where the command prints it
	for _, s := range secrets {
		for _, form := range []string{s, url.QueryEscape(s), url.PathEscape(s)} {
			if len(form) >= minSecretLen && !slices.Contains(r.secrets, form) {
				r.secrets = append(r.secrets, form)
			}
		}
	}
	// Longest first, so that a secret is replaced whole before a secret inside it.
	slices.SortFunc(r.secrets, func(a, b string) int { return len(b) - len(a) })
	return shown
}

// String returns s with every registered URL replaced by its redacted form, and every secret by
// "xxxxx". The redacted URLs are kept as they are: a password that is also a word of the URL
// ("postgres") is masked in the rest of the text, not in the URL's scheme or user.
func (r *redactor) String(s string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	// Longest URL first, so that a URL is replaced whole before a URL that is a prefix of it.
	raws := slices.SortedFunc(maps.Keys(r.urls), func(a, b string) int { return len(b) - len(a) })
	var shown []string
	for _, raw := range raws {
		if strings.Contains(s, raw) {
			s = strings.ReplaceAll(s, raw, placeholder(len(shown)))
			shown = append(shown, r.urls[raw])
		}
	}
	for _, secret := range r.secrets {
		s = strings.ReplaceAll(s, secret, redacted)
	}
	for i, u := range shown {
		s = strings.ReplaceAll(s, placeholder(i), u)
	}
	return s
}

// placeholder stands for the i-th redacted URL while secrets are replaced: NUL bytes never
// occur in a URL, a secret or the command's text.
func placeholder(i int) string { return "\x00" + strconv.Itoa(i) + "\x00" }

// redactWriter writes through a redactor. Every Write is redacted on its own, so a secret split
// across two Writes would pass: the command writes whole lines and whole documents.
type redactWriter struct {
	w io.Writer
	r *redactor
}

func (rw redactWriter) Write(p []byte) (int, error) {
	if _, err := io.WriteString(rw.w, rw.r.String(string(p))); err != nil {
		return 0, err
	}
	return len(p), nil
}
