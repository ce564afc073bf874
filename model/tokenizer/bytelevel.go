package tokenizer

import "unicode/utf8"

// byteLevel is GPT-2's reversible map from the 256 byte values to printable
// runes: byte-level BPE vocabularies spell every token in these runes, so a
// token string such as "Ġthe" stands for the bytes " the".
type byteLevel struct {
	toRune [256]rune
	toByte map[rune]byte
}

func newByteLevel() *byteLevel {
	bl := &byteLevel{toByte: make(map[rune]byte, 256)}
	// Printable Latin-1 bytes keep their own code point; the others (controls,
	// space, soft hyphen, ...) are shifted to 256+n in byte order, which is
	// what makes the alphabet printable and the map reversible.
	n := 0
	for b := 0; b < 256; b++ {
		printable := (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF)
		r := rune(b)
		if !printable {
			r = rune(256 + n)
			n++
		}
		bl.toRune[b] = r
		bl.toByte[r] = byte(b)
	}
	return bl
}

// encode spells raw bytes in the byte-level alphabet.
func (bl *byteLevel) encode(raw string) string {
	buf := make([]byte, 0, 2*len(raw))
	for i := 0; i < len(raw); i++ {
		buf = utf8.AppendRune(buf, bl.toRune[raw[i]])
	}
	return string(buf)
}

// decode turns a token string back into bytes the way Hugging Face's
// ByteLevel decoder does: every rune must be in the alphabet, otherwise the
// token's own UTF-8 bytes are used unchanged (that is how added tokens whose
// content lies outside the alphabet come out).
func (bl *byteLevel) decode(tok string) []byte {
	out := make([]byte, 0, len(tok))
	for _, r := range tok {
		b, ok := bl.toByte[r]
		if !ok {
			return []byte(tok)
		}
		out = append(out, b)
	}
	return out
}
