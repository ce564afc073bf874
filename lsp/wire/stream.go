// Package wire frames JSON-RPC messages for the language server: the LSP base
// protocol's "Content-Length: N\r\n\r\n" + body, as a jsonrpc2.Stream.
//
// jsonrpc2 v0.10.0's own stream gives up on the first bad frame, and its
// connection then closes: one malformed message from an editor (or a wrong
// Content-Length) would end the session. This Stream instead answers each bad
// frame with a JSON-RPC error, finds the next header, and carries on; only an
// I/O error on the underlying connection ends it. Message size is bounded, so
// a hostile or broken client cannot make the server allocate without limit.
package wire

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"

	"go.lsp.dev/jsonrpc2"
)

// DefaultMaxMessage bounds one message body. A 10 MB document sent in full
// in didOpen is about that much JSON; escapes can double it.
const DefaultMaxMessage = 64 << 20

// maxHeaderLine bounds one header line; longer runs are garbage.
const maxHeaderLine = 4 << 10

var contentLength = []byte("content-length:")

// Stream is a jsonrpc2.Stream that survives malformed input.
type Stream struct {
	in   reader
	out  io.Writer
	conn io.Closer
	max  int64
	// OnError, if set, is told about each frame that was rejected (for
	// logging); the client has already been answered where it can be.
	onError func(error)

	wmu sync.Mutex // serialises writes: jsonrpc2's and our own error replies

	// badRun counts the bad frames since the last good one; past
	// maxBadReplies of them, frames without an id are no longer answered
	// one by one (garbage would otherwise cost a reply per few bytes of
	// input), and the next good frame is preceded by one reply that says
	// how many were skipped.
	badRun, unanswered int
}

// maxBadReplies is how many bad frames in a row get a reply each.
const maxBadReplies = 16

// Option configures a Stream.
type Option func(*Stream)

// MaxMessage sets the largest message body accepted, in bytes.
func MaxMessage(n int64) Option { return func(s *Stream) { s.max = n } }

// OnError sets a function told about every rejected frame.
func OnError(f func(error)) Option { return func(s *Stream) { s.onError = f } }

// NewStream returns a Stream reading and writing conn.
func NewStream(conn io.ReadWriteCloser, opts ...Option) *Stream {
	s := &Stream{in: reader{src: conn}, out: conn, conn: conn, max: DefaultMaxMessage}
	for _, o := range opts {
		o(s)
	}
	return s
}

// Read returns the next well-formed message. Bad frames are answered with
// an error response (id null when the id cannot be read) and skipped.
func (s *Stream) Read(ctx context.Context) (jsonrpc2.Message, int64, error) {
	var total int64
	for {
		if err := ctx.Err(); err != nil {
			return nil, total, err
		}
		length, n, herr, err := s.readHeader()
		total += n
		if err != nil {
			return nil, total, err
		}
		if herr != nil {
			s.reject(nil, jsonrpc2.ParseError, herr)
			continue
		}
		if length > s.max {
			if err := s.in.discard(length); err != nil {
				return nil, total, err
			}
			total += length
			s.reject(nil, jsonrpc2.InvalidRequest, fmt.Errorf("message of %d bytes is over the %d-byte limit; skipped", length, s.max))
			continue
		}
		// The body stays in the read buffer: a body that turns out to
		// be bad is given back by moving the read position, not by
		// copying it (see reader.unread), and resynchronising costs time
		// linear in the input whatever lengths the headers claim.
		body, err := s.in.next(int(length))
		total += int64(len(body))
		if err != nil {
			return nil, total, err
		}
		msg, id, code, derr := decode(body)
		if derr == nil {
			s.goodFrame()
			// The decoded message holds copies (json.RawMessage copies),
			// never the buffer.
			return msg, total, nil
		}
		// A Content-Length larger than the body swallows the next frame's
		// header; hand the bytes from that header on back to the reader.
		if i := headerStart(body[1:]); i >= 0 {
			s.in.unread(len(body) - 1 - i)
		}
		s.reject(id, code, derr)
	}
}

// readHeader reads one header block and returns the body length it gives.
// herr reports a header block that cannot be used; err an I/O error. Bytes
// that are not a header are skipped up to the next Content-Length line.
func (s *Stream) readHeader() (length, n int64, herr, err error) {
	length = -1
	seen := false // any header line in this block
	var skipped int64
	for {
		line, m, err := s.in.readLine(maxHeaderLine)
		n += int64(m)
		if err != nil {
			return 0, n, nil, err
		}
		line = bytes.TrimRight(line, "\r\n")
		if i := indexFold(line, contentLength); i > 0 {
			// Garbage (say, the tail of a body whose length was too short)
			// runs straight into the next header.
			skipped += int64(i)
			line = line[i:]
		}
		if len(line) == 0 {
			if !seen {
				continue // blank lines between frames
			}
			break
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 || (!seen && !knownHeader(line[:colon])) {
			// Not a header: skip until a frame begins.
			skipped += int64(len(line))
			continue
		}
		seen = true
		name := strings.TrimSpace(string(line[:colon]))
		value := strings.TrimSpace(string(line[colon+1:]))
		if strings.EqualFold(name, "Content-Length") {
			v, perr := strconv.ParseInt(value, 10, 64)
			switch {
			case perr != nil || v < 0:
				herr = fmt.Errorf("invalid Content-Length %q", value)
			case v == 0:
				herr = errors.New("Content-Length 0: empty message")
			default:
				length = v
			}
		}
		// Other headers (Content-Type) are ignored: the body is UTF-8 JSON.
	}
	if skipped > 0 && s.onError != nil {
		s.onError(fmt.Errorf("skipped %d bytes that were not an LSP header", skipped))
	}
	if herr == nil && length < 0 {
		herr = errors.New("header without Content-Length")
	}
	return length, n, herr, nil
}

// knownHeader reports whether name is a header of the LSP base protocol; a
// frame may start with either.
func knownHeader(name []byte) bool {
	name = bytes.TrimSpace(name)
	return bytes.EqualFold(name, []byte("Content-Length")) || bytes.EqualFold(name, []byte("Content-Type"))
}

// decode parses one message body. On failure it returns the request id if
// one can be read (so the error reaches the right request) and the JSON-RPC
// error code to answer with.
func decode(body []byte) (msg jsonrpc2.Message, id json.RawMessage, code jsonrpc2.Code, err error) {
	var probe struct {
		ID     json.RawMessage `json:"id"`
		Method *string         `json:"method"`
		Error  *jsonrpc2.Error `json:"error"`
	}
	if jerr := json.Unmarshal(body, &probe); jerr != nil {
		if bytes.HasPrefix(bytes.TrimSpace(body), []byte("[")) {
			return nil, nil, jsonrpc2.InvalidRequest, errors.New("batch messages are not supported by LSP")
		}
		return nil, nil, jsonrpc2.ParseError, fmt.Errorf("message is not valid JSON: %v", jerr)
	}
	if len(probe.ID) > 0 && string(probe.ID) != "null" {
		var num int64
		var str string
		switch {
		case json.Unmarshal(probe.ID, &str) == nil:
		case json.Unmarshal(probe.ID, &num) == nil && num == int64(int32(num)):
		default:
			// jsonrpc2.ID holds an int32 or a string.
			return nil, nil, jsonrpc2.InvalidRequest, fmt.Errorf("request id %s is not supported: use a string or an integer that fits in 32 bits", probe.ID)
		}
		id = probe.ID
	}
	msg, err = jsonrpc2.DecodeMessage(body)
	if err != nil {
		switch {
		case probe.Method == nil && probe.Error != nil:
			// An error response without an id: the peer could not read
			// something we sent. Answering it could loop forever.
			return nil, nil, 0, fmt.Errorf("error response without id: %d %s", probe.Error.Code, probe.Error.Message)
		case probe.Method == nil:
			return nil, nil, 0, fmt.Errorf("invalid response: %v", err)
		case id == nil:
			// A notification: JSON-RPC sends no reply to those.
			return nil, nil, 0, fmt.Errorf("invalid notification %q: %v", *probe.Method, err)
		}
		return nil, id, jsonrpc2.InvalidRequest, fmt.Errorf("invalid JSON-RPC message: %v", err)
	}
	return msg, nil, 0, nil
}

// goodFrame ends a run of bad frames, reporting the ones not answered.
func (s *Stream) goodFrame() {
	if s.unanswered > 0 {
		err := fmt.Errorf("%d more malformed frames were skipped without a reply each", s.unanswered)
		if s.onError != nil {
			s.onError(err)
		}
		s.reply(nil, jsonrpc2.ParseError, err)
	}
	s.badRun, s.unanswered = 0, 0
}

// reject answers a bad frame. A zero code means no reply can be sent.
func (s *Stream) reject(id json.RawMessage, code jsonrpc2.Code, err error) {
	s.badRun++
	if id == nil && s.badRun > maxBadReplies {
		s.unanswered++
		return
	}
	if s.onError != nil {
		s.onError(err)
	}
	if code == 0 {
		return
	}
	s.reply(id, code, err)
}

// reply sends an error response.
func (s *Stream) reply(id json.RawMessage, code jsonrpc2.Code, err error) {
	if id == nil {
		id = json.RawMessage("null")
	}
	body, merr := json.Marshal(struct {
		Version string          `json:"jsonrpc"`
		ID      json.RawMessage `json:"id"`
		Error   *jsonrpc2.Error `json:"error"`
	}{"2.0", id, jsonrpc2.NewError(code, err.Error())})
	if merr != nil {
		return
	}
	_, _ = s.writeFrame(body) // a failed write surfaces on the next Read
}

// Write sends msg in one frame.
func (s *Stream) Write(ctx context.Context, msg jsonrpc2.Message) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	m, ok := msg.(json.Marshaler)
	if !ok {
		return 0, fmt.Errorf("cannot marshal %T", msg)
	}
	data, err := m.MarshalJSON()
	if err != nil {
		return 0, fmt.Errorf("marshaling message: %w", err)
	}
	return s.writeFrame(data)
}

func (s *Stream) writeFrame(body []byte) (int64, error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	hdr := "Content-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n"
	// One write for small messages keeps frames whole on pipes and sockets.
	if len(body) < 64<<10 {
		buf := make([]byte, 0, len(hdr)+len(body))
		n, err := s.out.Write(append(append(buf, hdr...), body...))
		if err != nil {
			return int64(n), fmt.Errorf("writing message: %w", err)
		}
		return int64(n), nil
	}
	n, err := io.WriteString(s.out, hdr)
	if err != nil {
		return int64(n), fmt.Errorf("writing header: %w", err)
	}
	m, err := s.out.Write(body)
	if err != nil {
		return int64(n + m), fmt.Errorf("writing message: %w", err)
	}
	return int64(n + m), nil
}

// Close closes the connection, unblocking Read.
func (s *Stream) Close() error { return s.conn.Close() }

// indexFold is bytes.Index for an ASCII lower-case needle, ignoring case.
func indexFold(s, lowerSep []byte) int {
	n := len(lowerSep)
	for i := 0; i+n <= len(s); i++ {
		if s[i]|0x20 != lowerSep[0]|0x20 {
			continue
		}
		if bytes.EqualFold(s[i:i+n], lowerSep) {
			return i
		}
	}
	return -1
}

// headerStart returns where in a bad body the next frame's header seems to
// begin: a "Content-Length:", or a tail cut short inside one.
func headerStart(body []byte) int {
	for i := range body {
		if body[i]|0x20 != 'c' {
			continue
		}
		n := min(len(body)-i, len(contentLength))
		if bytes.EqualFold(body[i:i+n], contentLength[:n]) {
			return i
		}
	}
	return -1
}

// reader is a buffered reader that can take back bytes it returned.
//
// Its costs are linear in the input: the buffer is compacted only when the
// consumed part is at least as large as the part it moves, and grows by
// doubling, so every byte is moved a constant number of times (amortised);
// work counts the bytes moved and scanned, for tests to hold it to that.
type reader struct {
	src  io.Reader
	buf  []byte
	r, w int
	err  error
	work int64
}

// fill reads more input, making room first.
func (b *reader) fill() error {
	if b.err != nil {
		return b.err
	}
	if b.w == len(b.buf) {
		live := b.w - b.r
		if b.r > 0 && b.r >= live {
			copy(b.buf, b.buf[b.r:b.w])
		} else {
			nb := make([]byte, max(4096, 2*len(b.buf)))
			copy(nb, b.buf[b.r:b.w])
			b.buf = nb
		}
		b.work += int64(live)
		b.r, b.w = 0, live
	}
	n, err := b.src.Read(b.buf[b.w:])
	b.w += n
	b.work += int64(n)
	if err != nil && n == 0 {
		b.err = err
		return err
	}
	return nil
}

// readLine returns the next line, with its terminator. A line longer than
// limit is returned in pieces of limit bytes, so that garbage without
// newlines cannot grow the buffer. n is the number of bytes consumed.
func (b *reader) readLine(limit int) (line []byte, n int, err error) {
	scanned := 0 // bytes after b.r known to hold no newline
	for {
		if i := bytes.IndexByte(b.buf[b.r+scanned:b.w], '\n'); i >= 0 && scanned+i < limit {
			i += scanned
			b.work += int64(i + 1 - scanned)
			line = b.buf[b.r : b.r+i+1]
			b.r += i + 1
			return line, i + 1, nil
		}
		b.work += int64(b.w - b.r - scanned)
		scanned = b.w - b.r
		if b.w-b.r >= limit {
			// Keep a tail that might begin a "Content-Length:" split across
			// reads.
			take := b.w - b.r - len(contentLength)
			line = b.buf[b.r : b.r+take]
			b.r += take
			return line, take, nil
		}
		if err := b.fill(); err != nil {
			if b.w > b.r && err == io.EOF {
				line = b.buf[b.r:b.w]
				b.r = b.w
				return line, len(line), nil
			}
			return nil, 0, err
		}
	}
}

// next returns the next n bytes, consumed. The slice is the reader's buffer:
// valid until the next call, and what unread can give back.
func (b *reader) next(n int) ([]byte, error) {
	for b.w-b.r < n {
		if err := b.fill(); err != nil {
			out := b.buf[b.r:b.w]
			b.r = b.w
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return out, fmt.Errorf("reading message body: %w", err)
		}
	}
	out := b.buf[b.r : b.r+n : b.r+n]
	b.r += n
	return out, nil
}

// discard skips n bytes without holding them.
func (b *reader) discard(n int64) error {
	k := min(n, int64(b.w-b.r))
	b.r += int(k)
	n -= k
	if n > 0 {
		if b.err != nil {
			return b.err
		}
		if _, err := io.CopyN(io.Discard, b.src, n); err != nil {
			return fmt.Errorf("skipping oversized message: %w", err)
		}
	}
	return nil
}

// unread gives back the last n bytes that next returned. Nothing has been
// read since, so they are still in the buffer just before the read position.
func (b *reader) unread(n int) {
	b.r -= n
}
