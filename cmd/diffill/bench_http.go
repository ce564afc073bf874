package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
)

// benchHTTP serves --http in this process on loopback and drives it with
// each count of concurrent clients in turn, every client posting llama.cpp
// /infill requests back to back (a document of its own, as each editor
// has), for at most dur or perClient requests each: throughput, latency
// percentiles, errors (503s counted apart) and memory.
func benchHTTP(ctx context.Context, w io.Writer, modelDir, device string, clients []int, dur time.Duration, perClient int) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	engines := newEngineCache(nil)
	s := newHTTPServer(engines, zap.NewNop(), httpOptions{Model: modelDir, Device: device, Queue: 64})
	sctx, stop := context.WithCancel(ctx)
	defer stop()
	served := make(chan error, 1)
	go func() { served <- serveHTTP(sctx, ln, s) }()
	url := "http://" + ln.Addr().String() + "/infill"
	client := &http.Client{Timeout: time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}

	// One request first: the model loads outside the figures.
	if _, err := benchPost(ctx, client, url, benchBody(0, 0)); err != nil {
		return fmt.Errorf("first request: %w", err)
	}
	fmt.Fprintf(w, "model %s, %d CPUs (GOMAXPROCS %d), each client at most %d requests or %v\n",
		modelName(modelDir), runtime.NumCPU(), runtime.GOMAXPROCS(0), perClient, dur)
	fmt.Fprintf(w, "%-8s %8s %9s %9s %9s %7s %6s %10s %10s\n", "clients", "requests", "req/s", "p50 ms", "p99 ms", "errors", "503s", "RSS MB", "heap MB")
	var base float64
	for _, n := range clients {
		r := benchHTTPRound(ctx, client, url, n, dur, perClient)
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		rate := float64(len(r.lat)) / r.wall.Seconds()
		fmt.Fprintf(w, "%-8d %8d %9.2f %9.1f %9.1f %7d %6d %10.1f %10.1f", n, len(r.lat), rate,
			percentile(r.lat, 0.5), percentile(r.lat, 0.99), r.errors, r.busy, float64(rssBytes())/(1<<20), float64(ms.HeapInuse)/(1<<20))
		if base == 0 {
			base = rate
			fmt.Fprintln(w)
		} else {
			fmt.Fprintf(w, "  (%.2fx the first row)\n", rate/base)
		}
		if r.firstErr != nil {
			fmt.Fprintf(w, "  first error: %v\n", r.firstErr)
		}
		if ctx.Err() != nil {
			break
		}
	}
	stop()
	return <-served
}

type httpRound struct {
	lat          []time.Duration
	errors, busy int
	firstErr     error
	wall         time.Duration
}

func benchHTTPRound(ctx context.Context, client *http.Client, url string, n int, dur time.Duration, perClient int) *httpRound {
	ctx, cancel := context.WithTimeout(ctx, dur)
	defer cancel()
	var mu sync.Mutex
	r := &httpRound{}
	var wg sync.WaitGroup
	start := time.Now()
	for c := 0; c < n; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < perClient && ctx.Err() == nil; i++ {
				t0 := time.Now()
				code, err := benchPost(ctx, client, url, benchBody(c, i))
				d := time.Since(t0)
				if ctx.Err() != nil {
					return // the round's time is up: not the server's error
				}
				mu.Lock()
				switch {
				case err != nil:
					r.errors++
					if r.firstErr == nil {
						r.firstErr = err
					}
					if code == http.StatusServiceUnavailable {
						r.busy++
					}
				default:
					r.lat = append(r.lat, d)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	r.wall = time.Since(start)
	return r
}

// benchBody is client c's i-th request: its own file, the cursor moving
// down it as someone types.
func benchBody(c, i int) []byte {
	var pre strings.Builder
	fmt.Fprintf(&pre, "package client%d\n\nimport \"strings\"\n\n", c)
	for j := 0; j <= i%8; j++ {
		fmt.Fprintf(&pre, "func f%d(s string) int {\n\treturn strings.Count(s, %q)\n}\n\n", j, strconv.Itoa(j))
	}
	pre.WriteString("func g(s string) int {\n\tn := ")
	b, _ := json.Marshal(map[string]any{
		"input_prefix": pre.String(), "input_suffix": "\n\treturn n\n}\n", "input_extra": []any{},
		"prompt": "", "n_predict": 128, "top_k": 40, "top_p": 0.99, "stream": false,
		"samplers": []string{"top_k", "top_p", "infill"}, "cache_prompt": true, "t_max_predict_ms": 10000,
	})
	return b
}

func benchPost(ctx context.Context, client *http.Client, url string, body []byte) (int, error) {
	req, err := http.NewRequestWithContext(ctx, "POST", url, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, fmt.Errorf("%s: %s", resp.Status, bytes.TrimSpace(b))
	}
	return resp.StatusCode, nil
}

// rssBytes is this process's resident memory (Linux; 0 elsewhere).
func rssBytes() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}
