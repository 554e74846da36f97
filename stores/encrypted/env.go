package encryptedstore

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"filippo.io/age"

	"github.com/wwebstore/wwebstore/remoteauth"
)

// The environment variables that OptionsFromEnv reads. Keys are separated by newlines, commas
// or spaces; a file holds one key per line, lines starting with '#' are comments (the format
// of age-keygen's output and of age's -R and -i files).
const (
	// EnvRecipients holds public keys ("age1…") that archives are encrypted to.
	EnvRecipients = "WWEBSTORE_AGE_RECIPIENTS"
	// EnvRecipientsFile names a file of public keys.
	EnvRecipientsFile = "WWEBSTORE_AGE_RECIPIENTS_FILE"
	// EnvIdentity holds private keys ("AGE-SECRET-KEY-1…") that decrypt archives; without
	// recipients, the first one's public key encrypts. A secret: prefer EnvIdentityFile on hosts
	// where the environment of a process is visible to others.
	EnvIdentity = "WWEBSTORE_AGE_IDENTITY"
	// EnvIdentityFile names a file of private keys, such as age-keygen writes.
	EnvIdentityFile = "WWEBSTORE_AGE_IDENTITY_FILE"
	// EnvPassphrase is Options.Passphrase.
	EnvPassphrase = "WWEBSTORE_AGE_PASSPHRASE"
	// EnvOldPassphrase is a passphrase that still decrypts, after a change of passphrase or a
	// move from a passphrase to keys.
	EnvOldPassphrase = "WWEBSTORE_AGE_OLD_PASSPHRASE"
	// EnvScryptWorkFactor is Options.ScryptWorkFactor, a number.
	EnvScryptWorkFactor = "WWEBSTORE_AGE_SCRYPT_WORK_FACTOR"
	// EnvAllowPlaintext is Options.AllowPlaintext: "1" or "true".
	EnvAllowPlaintext = "WWEBSTORE_AGE_ALLOW_PLAINTEXT"
)

// OptionsFromEnv returns the Options that the WWEBSTORE_AGE_* environment variables describe
// (the Env… constants). Identities come from EnvIdentity, then EnvIdentityFile, then
// EnvOldPassphrase: put the new key first. It fails when none of EnvIdentity, EnvIdentityFile and
// EnvPassphrase is set, or when a variable cannot be parsed; the error names the variable and
// never shows a secret.
func OptionsFromEnv() (*Options, error) {
	o := &Options{Passphrase: os.Getenv(EnvPassphrase)}
	if v := os.Getenv(EnvScryptWorkFactor); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return nil, fmt.Errorf("encryptedstore: %s=%q is not a number (1 to %d)", EnvScryptWorkFactor, v, MaxScryptWorkFactor)
		}
		o.ScryptWorkFactor = n
	}
	if v := os.Getenv(EnvAllowPlaintext); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return nil, fmt.Errorf("encryptedstore: %s=%q: want 1 or 0, true or false", EnvAllowPlaintext, v)
		}
		o.AllowPlaintext = b
	}
	if v := os.Getenv(EnvRecipients); v != "" {
		rs, err := age.ParseRecipients(strings.NewReader(keyLines(v)))
		if err != nil {
			return nil, fmt.Errorf("encryptedstore: %s: %w (want age1… public keys)", EnvRecipients, err)
		}
		o.Recipients = append(o.Recipients, rs...)
	}
	if p := os.Getenv(EnvRecipientsFile); p != "" {
		rs, err := parseFile(p, age.ParseRecipients)
		if err != nil {
			return nil, fmt.Errorf("encryptedstore: %s: %w", EnvRecipientsFile, err)
		}
		o.Recipients = append(o.Recipients, rs...)
	}
	if v := os.Getenv(EnvIdentity); v != "" {
		ids, err := age.ParseIdentities(strings.NewReader(keyLines(v)))
		if err != nil {
			return nil, fmt.Errorf("encryptedstore: %s: %w (want AGE-SECRET-KEY-1… private keys)", EnvIdentity, err)
		}
		o.Identities = append(o.Identities, ids...)
	}
	if p := os.Getenv(EnvIdentityFile); p != "" {
		ids, err := parseFile(p, age.ParseIdentities)
		if err != nil {
			return nil, fmt.Errorf("encryptedstore: %s: %w", EnvIdentityFile, err)
		}
		o.Identities = append(o.Identities, ids...)
	}
	if v := os.Getenv(EnvOldPassphrase); v != "" {
		id, err := age.NewScryptIdentity(v)
		if err != nil {
			return nil, fmt.Errorf("encryptedstore: %s: %w", EnvOldPassphrase, err)
		}
		id.SetMaxWorkFactor(max(o.ScryptWorkFactor, DefaultScryptWorkFactor))
		o.Identities = append(o.Identities, id)
	}
	if o.Passphrase == "" && len(o.Identities) == 0 {
		return nil, fmt.Errorf("encryptedstore: no key in the environment: set %s or %s (private keys, from age-keygen), or %s", EnvIdentity, EnvIdentityFile, EnvPassphrase)
	}
	return o, nil
}

// NewFromEnv returns New(inner, opts) with the Options of OptionsFromEnv.
func NewFromEnv(inner remoteauth.Store) (*Store, error) {
	o, err := OptionsFromEnv()
	if err != nil {
		return nil, err
	}
	return New(inner, o)
}

// keyLines puts each key of a variable on its own line, for age's parsers.
func keyLines(v string) string {
	return strings.Join(strings.FieldsFunc(v, func(r rune) bool {
		return r == ',' || r == ' ' || r == '\t' || r == '\n' || r == '\r'
	}), "\n")
}

func parseFile[T any](path string, parse func(f io.Reader) ([]T, error)) ([]T, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	keys, err := parse(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return keys, nil
}
