package profilegen

import (
	"encoding/base64"
	"encoding/binary"
	"io"
	"math/rand/v2"
	"strconv"
	"sync"
)

// segmentSize is the granularity of the content mix: a file body is a
// sequence of segments of at most segmentSize bytes, alternately drawn from
// the ChaCha8 stream (incompressible) and from the corpus (compressible).
const segmentSize = 64 << 10

// corpusSize is the size of the compressible corpus. It is much larger than
// deflate's 32 KiB window, so a segment taken at a random offset compresses
// like the corpus does locally, and two segments rarely share bytes.
const corpusSize = 8 << 20

// Salts separate the random streams derived from one Options.Seed.
const (
	saltPlan uint64 = iota + 1
	saltFile
	saltChurn
	saltCorpus
)

// splitmix64 is the SplitMix64 finaliser: a cheap, well-mixed hash of x.
func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// deriveSeed turns parts (a seed, a salt, an index…) into a ChaCha8 seed.
func deriveSeed(parts ...uint64) [32]byte {
	h := uint64(0x5750524f46494c45) // "WPROFILE"
	for _, p := range parts {
		h = splitmix64(h ^ p)
	}
	var s [32]byte
	for i := 0; i < 4; i++ {
		h = splitmix64(h)
		binary.LittleEndian.PutUint64(s[8*i:], h)
	}
	return s
}

// corpus returns the shared compressible corpus. It does not depend on the
// seed: the seed only chooses where segments are taken from. It is built once
// per process (about 8 MiB, tens of milliseconds) and never modified.
var corpus = sync.OnceValue(func() []byte {
	return buildCorpus(rand.New(rand.NewChaCha8(deriveSeed(saltCorpus))), corpusSize)
})

// Vocabulary for chat text in the corpus.
var words = []string{
	"the", "to", "and", "you", "I", "a", "it", "is", "of", "that", "in", "we", "for", "on", "me",
	"ok", "yes", "no", "thanks", "hi", "hello", "good", "morning", "night", "tomorrow", "today",
	"see", "at", "be", "are", "have", "will", "can", "do", "not", "just", "so", "what", "when",
	"where", "how", "call", "later", "now", "send", "sent", "photo", "video", "meeting", "office",
	"home", "dinner", "lunch", "coffee", "let", "know", "please", "sure", "great", "love", "miss",
	"happy", "birthday", "weekend", "monday", "friday", "time", "minutes", "hours", "waiting",
	"arrived", "leaving", "coming", "back", "soon", "order", "delivery", "payment", "invoice",
	"price", "address", "location", "shared", "group", "chat", "message", "number", "phone",
	"check", "update", "new", "old", "done", "ready", "thank", "much", "very", "also", "maybe",
	"tonight", "school", "kids", "work", "project", "deadline", "report", "file", "document",
	"link", "open", "close", "car", "train", "bus", "airport", "flight", "ticket", "hotel",
}

var msgTypes = []string{"chat", "chat", "chat", "chat", "image", "ptt", "sticker", "video", "document", "revoked", "e2e_notification"}

// buildCorpus writes n bytes of text shaped like what WhatsApp Web keeps in
// IndexedDB and Local Storage: LevelDB-style keys followed by V8-serialised
// message objects, JSON documents and chat text, with random identifiers,
// phone numbers, timestamps and base64 media keys. The share of random
// fields is tuned so that deflate level 6 shrinks the corpus to about 40 %.
func buildCorpus(r *rand.Rand, n int) []byte {
	b := make([]byte, 0, n+4096)
	hex := func(k int) {
		const digits = "0123456789ABCDEF"
		for i := 0; i < k; i++ {
			b = append(b, digits[r.IntN(16)])
		}
	}
	var raw [48]byte
	b64 := func(k int) {
		for i := range raw[:k] {
			raw[i] = byte(r.Uint32())
		}
		b = base64.StdEncoding.AppendEncode(b, raw[:k])
	}
	phone := func() {
		b = append(b, "49"...)
		b = strconv.AppendInt(b, 1500000000+r.Int64N(99999999), 10)
		b = append(b, "@c.us"...)
	}
	text := func(nw int) {
		for i := 0; i < nw; i++ {
			if i > 0 {
				b = append(b, ' ')
			}
			// Skewed choice: frequent words come first in the list.
			u := r.Float64()
			b = append(b, words[int(u*u*float64(len(words)))]...)
		}
	}
	t := int64(1767225600) // 2026-01-01
	for len(b) < n {
		t += int64(r.IntN(600))
		switch k := r.IntN(10); {
		case k < 6: // IndexedDB record: key, then a V8-serialised object.
			b = append(b, 0, byte(1+r.IntN(4)), byte(1+r.IntN(9)), 1, 0x10)
			b = append(b, "false_"...)
			phone()
			b = append(b, "_3EB0"...)
			hex(16)
			b = append(b, 0xff, 0x0f, 'o', '"', 2, 'i', 'd', '"')
			b = append(b, "false_"...)
			phone()
			b = append(b, "_3EB0"...)
			hex(16)
			b = append(b, '"', 4, 't', 'y', 'p', 'e', '"')
			b = append(b, msgTypes[r.IntN(len(msgTypes))]...)
			b = append(b, '"', 1, 't', 'I')
			b = binary.AppendUvarint(b, uint64(t)<<1)
			b = append(b, '"', 4, 'f', 'r', 'o', 'm', '"')
			phone()
			b = append(b, '"', 3, 'a', 'c', 'k', 'I', byte(2*r.IntN(4)))
			b = append(b, '"', 4, 'b', 'o', 'd', 'y', '"')
			text(3 + r.IntN(14))
			if r.IntN(8) == 0 {
				b = append(b, '"', 8, 'm', 'e', 'd', 'i', 'a', 'K', 'e', 'y', '"')
				b64(32)
				b = append(b, '"', 12)
				b = append(b, "encFilehash\""...)
				b64(32)
			}
			b = append(b, '{', 12)
		case k < 8: // JSON document (contacts, chats, settings).
			b = append(b, `{"id":"`...)
			phone()
			b = append(b, `","name":"`...)
			text(1 + r.IntN(2))
			b = append(b, `","t":`...)
			b = strconv.AppendInt(b, t, 10)
			b = append(b, `,"unreadCount":`...)
			b = strconv.AppendInt(b, int64(r.IntN(20)), 10)
			b = append(b, `,"muteExpiration":0,"isReadOnly":false,"archive":false,"lastReceivedKey":{"fromMe":false,"remote":"`...)
			phone()
			b = append(b, `","id":"3EB0`...)
			hex(16)
			b = append(b, `"},"tcToken":"`...)
			b64(24)
			b = append(b, "\"}\n"...)
		default: // Signal-protocol style key material and counters.
			b = append(b, `{"_serialized":"`...)
			phone()
			b = append(b, `.0","registrationId":`...)
			b = strconv.AppendInt(b, int64(r.IntN(16380)), 10)
			b = append(b, `,"identityKey":"`...)
			b64(33)
			b = append(b, `","preKeyId":`...)
			b = strconv.AppendInt(b, int64(r.IntN(1<<24)), 10)
			b = append(b, "}\n"...)
		}
	}
	return b[:n]
}

// mixer writes file bodies: alternating incompressible and compressible
// segments. One mixer is used by one goroutine at a time.
type mixer struct {
	rng *rand.ChaCha8
	buf []byte // batches small writes; cap is at least 2*segmentSize
}

func newMixer() *mixer {
	return &mixer{rng: rand.NewChaCha8([32]byte{}), buf: make([]byte, 0, 4*segmentSize)}
}

// write writes head and then n-len(head) bytes of mixed content to w,
// reseeding the stream with seed first, so the output depends only on
// (head, n, seed).
//
// The body is cut into segments of segmentSize bytes, or into two halves
// when it is shorter than two segments; segments alternate between ChaCha8
// output and a corpus window at a random offset, starting with a random kind.
// So every file, even a small one, is about half incompressible.
func (m *mixer) write(w io.Writer, head []byte, n int64, seed [32]byte) error {
	m.rng.Seed(seed)
	c := corpus()
	m.buf = append(m.buf[:0], head...)
	body := n - int64(len(head))
	seg := int64(segmentSize)
	if body < 2*seg {
		seg = (body + 1) / 2
	}
	random := m.rng.Uint64()&1 == 0
	for body > 0 {
		k := min(seg, body)
		if len(m.buf)+int(k) > cap(m.buf) {
			if _, err := w.Write(m.buf); err != nil {
				return err
			}
			m.buf = m.buf[:0]
		}
		p := m.buf[len(m.buf) : len(m.buf)+int(k)]
		if random {
			m.rng.Read(p)
		} else {
			off := m.rng.Uint64() % uint64(len(c)-int(k)+1)
			copy(p, c[off:])
		}
		m.buf = m.buf[:len(m.buf)+int(k)]
		body -= k
		random = !random
	}
	if len(m.buf) > 0 {
		if _, err := w.Write(m.buf); err != nil {
			return err
		}
	}
	return nil
}
