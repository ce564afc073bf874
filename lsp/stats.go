package lsp

import (
	"bufio"
	"context"
	"os"
	"runtime"
	"strconv"
	"strings"
)

// MethodStats is diffill's own request for the server's resource use, for
// `diffill bench --lsp` and for debugging a running server. It takes no
// params and answers a Stats.
const MethodStats = "diffill/stats"

// Stats is what MethodStats answers.
type Stats struct {
	Goroutines      int    `json:"goroutines"`
	HeapInuseBytes  uint64 `json:"heapInuseBytes"`
	RSSBytes        uint64 `json:"rssBytes"` // 0 where /proc is missing
	PendingRequests int    `json:"pendingRequests"`
	OpenDocuments   int    `json:"openDocuments"`
	OpenBytes       int    `json:"openBytes"`
	// Completions since the session started: computed by the engine
	// (including runs cancelled part way), answered from the cache, and
	// answered by joining a run already under way.
	CompletionRuns   int64 `json:"completionRuns"`
	CompletionCached int64 `json:"completionCached"`
	CompletionJoined int64 `json:"completionJoined"`
}

func (s *Server) stats(ctx context.Context, v *view, _ *struct{}) (*Stats, error) {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	st := &Stats{
		Goroutines: runtime.NumGoroutine(), HeapInuseBytes: ms.HeapInuse, RSSBytes: rss(), OpenDocuments: v.docs.len(),
		CompletionRuns: s.engineRuns.Load(), CompletionCached: s.cacheHits.Load(), CompletionJoined: s.joined.Load(),
	}
	st.OpenBytes = v.docs.keptBytes()
	s.mu.Lock()
	st.PendingRequests = s.pending
	s.mu.Unlock()
	return st, nil
}

// rss reads the resident set size from /proc/self/status.
func rss() uint64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				return 0
			}
			return kb << 10
		}
	}
	return 0
}
