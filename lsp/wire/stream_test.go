package wire

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"go.lsp.dev/jsonrpc2"
)

// pipe is an in-memory connection: reads from in, writes to out.
type pipe struct {
	in  io.Reader
	out bytes.Buffer
}

func (p *pipe) Read(b []byte) (int, error)  { return p.in.Read(b) }
func (p *pipe) Write(b []byte) (int, error) { return p.out.Write(b) }
func (p *pipe) Close() error                { return nil }

func frame(body string) string { return fmt.Sprintf("Content-Length: %d\r\n\r\n%s", len(body), body) }

const (
	good1 = `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}`
	good2 = `{"jsonrpc":"2.0","method":"initialized","params":{}}`
)

// readAll reads messages until the input ends and returns their methods
// (or "response") and the error replies the stream wrote.
func readAll(t *testing.T, input string, opts ...Option) (methods []string, replies []string) {
	t.Helper()
	p := &pipe{in: strings.NewReader(input)}
	s := NewStream(p, opts...)
	for {
		msg, _, err := s.Read(context.Background())
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("Read: %v", err)
			}
			break
		}
		switch m := msg.(type) {
		case jsonrpc2.Request:
			methods = append(methods, m.Method())
		default:
			methods = append(methods, "response")
		}
	}
	out := p.out.String()
	for out != "" {
		var n int
		if _, err := fmt.Sscanf(out, "Content-Length: %d\r\n\r\n", &n); err != nil {
			t.Fatalf("stream wrote a bad frame: %q", out)
		}
		i := strings.Index(out, "\r\n\r\n") + 4
		var reply struct {
			ID    json.RawMessage `json:"id"`
			Error struct {
				Code    int    `json:"code"`
				Message string `json:"message"`
			} `json:"error"`
		}
		if err := json.Unmarshal([]byte(out[i:i+n]), &reply); err != nil {
			t.Fatalf("stream wrote bad JSON %q: %v", out[i:i+n], err)
		}
		replies = append(replies, fmt.Sprintf("%s %d", reply.ID, reply.Error.Code))
		out = out[i+n:]
	}
	return methods, replies
}

func TestStream(t *testing.T) {
	tests := []struct {
		name    string
		input   string
		methods string // the messages delivered
		replies string // the error replies written: "id code"
	}{
		{"two good frames", frame(good1) + frame(good2), "initialize initialized", ""},
		{"content-type first, odd case", "Content-Type: application/vscode-jsonrpc; charset=utf-8\r\ncontent-length: " +
			fmt.Sprint(len(good1)) + "\r\n\r\n" + good1, "initialize", ""},
		{"garbage before a header", "hello\r\nworld" + frame(good1), "initialize", ""},
		{"length too short", fmt.Sprintf("Content-Length: %d\r\n\r\n%s", len(good1)-5, good1) + frame(good2),
			"initialized", "null -32700"},
		{"length too long swallows the next frame", fmt.Sprintf("Content-Length: %d\r\n\r\n%s", len(good2)+10, good2) +
			frame(good1) + frame(good2), "initialize initialized", "null -32700"},
		{"missing content-length", "Content-Type: x\r\n\r\n" + good2 + frame(good1), "initialize", "null -32700"},
		{"bad content-length", "Content-Length: lots\r\n\r\n" + good2 + frame(good1), "initialize", "null -32700"},
		{"zero content-length", "Content-Length: 0\r\n\r\n" + frame(good1), "initialize", "null -32700"},
		{"oversized", frame(`{"jsonrpc":"2.0","id":7,"method":"x","params":"`+strings.Repeat("a", 200)+`"}`) + frame(good1),
			"initialize", "null -32600"},
		{"not JSON", frame(`{"jsonrpc":`) + frame(good1), "initialize", "null -32700"},
		{"batch", frame(`[`+good1+`]`) + frame(good2), "initialized", "null -32600"},
		{"wrong version keeps the id", frame(`{"jsonrpc":"1.0","id":5,"method":"x"}`) + frame(good2), "initialized", "5 -32600"},
		{"string id", frame(`{"jsonrpc":"2.0","id":"a-1","method":"x"}`), "x", ""},
		{"float id", frame(`{"jsonrpc":"2.0","id":1.5,"method":"x"}`) + frame(good2), "initialized", "null -32600"},
		{"id beyond int32", frame(`{"jsonrpc":"2.0","id":4294967296,"method":"x"}`), "", "null -32600"},
		{"bad notification gets no reply", frame(`{"jsonrpc":"1.0","method":"x"}`) + frame(good2), "initialized", ""},
		{"error response without id is not answered", frame(`{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"x"}}`) + frame(good2),
			"initialized", ""},
		{"response", frame(`{"jsonrpc":"2.0","id":3,"result":null}`), "response", ""},
		{"eof inside a body", "Content-Length: 99\r\n\r\n{", "", ""},
		{"long garbage line", strings.Repeat("z", 10000) + frame(good1), "initialize", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			methods, replies := readAll(t, tt.input, MaxMessage(128))
			if got := strings.Join(methods, " "); got != tt.methods {
				t.Errorf("messages = %q, want %q", got, tt.methods)
			}
			if got := strings.Join(replies, ", "); got != tt.replies {
				t.Errorf("error replies = %q, want %q", got, tt.replies)
			}
		})
	}
}

func TestWriteRoundTrip(t *testing.T) {
	call, err := jsonrpc2.NewCall(jsonrpc2.NewNumberID(4), "textDocument/completion", map[string]string{"text": "π 😀"})
	if err != nil {
		t.Fatal(err)
	}
	w := &pipe{in: strings.NewReader("")}
	if _, err := NewStream(w).Write(context.Background(), call); err != nil {
		t.Fatal(err)
	}
	msg, _, err := NewStream(&pipe{in: &w.out}).Read(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	got, ok := msg.(*jsonrpc2.Call)
	if !ok || got.Method() != "textDocument/completion" || got.ID() != jsonrpc2.NewNumberID(4) || string(got.Params()) != `{"text":"π 😀"}` {
		t.Fatalf("round trip = %#v", msg)
	}
}

// FuzzStream feeds arbitrary bytes, then a good frame after a clean break,
// and checks that the stream neither panics nor allocates past its limit,
// and that reading always ends.
func FuzzStream(f *testing.F) {
	f.Add([]byte(frame(good1)))
	f.Add([]byte("Content-Length: 5\r\n\r\n{\"a\":"))
	f.Add([]byte("Content-Length: 99999999999999999999\r\n\r\n"))
	f.Add([]byte("content-length:3\n\n[1]garbage\r\nContent-Length: 2\r\n\r\n{}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p := &pipe{in: bytes.NewReader(data)}
		s := NewStream(p, MaxMessage(1<<12))
		for i := 0; ; i++ {
			msg, _, err := s.Read(context.Background())
			if err != nil {
				break
			}
			if msg == nil {
				t.Fatal("nil message without error")
			}
			if i > len(data) {
				t.Fatal("more messages than input bytes")
			}
		}
		if len(s.in.buf) > 1<<16 {
			t.Fatalf("buffer grew to %d bytes", len(s.in.buf))
		}
		// The cost budget: bytes moved and scanned stay linear in the
		// input, whatever the headers claim.
		if budget := 8*int64(len(data)) + 1<<16; s.in.work > budget {
			t.Fatalf("%d bytes of input cost %d bytes of work (budget %d)", len(data), s.in.work, budget)
		}
	})
}

// hostileFraming are inputs that made resynchronisation quadratic: headers
// whose lengths swallow the frames after them, each then read again.
var hostileFraming = map[string]string{
	"headers claiming 1 MB, back to back": "Content-Length: 1000000\r\n\r\n",
	"same, with a cut header in between":  "Content-Length: 1000000\r\n\r\nxc",
	"header names in a JSON string":       "Content-Length: 900000\r\n\r\n{\"a\":\"content-length: 9",
	"garbage lines":                       "garbage garbage garbage\r\n",
	"no newlines":                         "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
	"c after c":                           "ccccccccccccccccccccccccc",
}

// TestResyncLinear feeds 8.4 MB of each hostile pattern: the stream's work
// (bytes moved and scanned) stays within a constant factor of the input.
// (It was quadratic: 1 MB of the first two patterns took 0.4 and 1.4 s,
// and the work grows with the square of the input.)
func TestResyncLinear(t *testing.T) {
	const size = 8_400_000
	for name, pat := range hostileFraming {
		data := []byte(strings.Repeat(pat, size/len(pat)))
		p := &pipe{in: bytes.NewReader(data)}
		s := NewStream(p)
		for {
			if _, _, err := s.Read(context.Background()); err != nil {
				break
			}
		}
		if s.in.work > 8*int64(len(data)) {
			t.Errorf("%s: %d bytes of input cost %d bytes of work", name, len(data), s.in.work)
		}
	}
}

// BenchmarkResync8MB: the time to get through 8.4 MB of hostile framing.
func BenchmarkResync8MB(b *testing.B) {
	for name, pat := range hostileFraming {
		data := []byte(strings.Repeat(pat, 8_400_000/len(pat)))
		b.Run(strings.ReplaceAll(name, " ", "_"), func(b *testing.B) {
			for range b.N {
				s := NewStream(&pipe{in: bytes.NewReader(data)})
				for {
					if _, _, err := s.Read(context.Background()); err != nil {
						break
					}
				}
			}
		})
	}
}

// TestBadRunReplies: a long run of garbage frames is answered frame by frame
// only at first, then once with a count, so that garbage cannot make the
// server write a reply for every few bytes it reads.
func TestBadRunReplies(t *testing.T) {
	input := strings.Repeat("Content-Length: 3\r\n\r\nxyz", 100) + frame(good1)
	methods, replies := readAll(t, input)
	if len(methods) != 1 || methods[0] != "initialize" {
		t.Fatalf("messages: %v", methods)
	}
	if len(replies) != maxBadReplies+1 {
		t.Fatalf("%d error replies for 100 bad frames, want %d", len(replies), maxBadReplies+1)
	}
	p := &pipe{in: strings.NewReader(input)}
	s := NewStream(p)
	if _, _, err := s.Read(context.Background()); err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("%d more malformed frames", 100-maxBadReplies); !strings.Contains(p.out.String(), want) {
		t.Fatalf("no reply saying %q", want)
	}
}
