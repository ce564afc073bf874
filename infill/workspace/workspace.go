// Package workspace knows the Go code around a document: the other files of
// its package, the open documents (whose unsaved text wins over the disk),
// the module (go.mod) and the exported API of the packages it imports. It
// knows nothing of LSP; the language server and the command line both use
// it, and the completion context (Snippets) is chosen from what it knows.
//
// As gopls's cache does, it works on immutable snapshots: a Package is a
// view of one directory at one moment, replaced when a file changes. Work
// is done in the background by one goroutine per Workspace (the machine's
// cores belong to the model); parse results are memoised by file content,
// imported packages' APIs by import path. A request never waits: Package
// answers with what is loaded now, possibly nothing, and starts the load.
// Broken, partial, huge or generated files, missing modules and build
// errors give less context, never an error.
package workspace

import (
	"context"
	"crypto/sha256"
	"go/ast"
	"go/build"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"
)

// Options configure a Workspace. The zero value uses the environment.
type Options struct {
	// GOROOT holds the standard library's sources. "": go/build's default.
	GOROOT string
	// GOMODCACHE is the module cache. "": $GOMODCACHE, else
	// $GOPATH/pkg/mod (go/build's default GOPATH).
	GOMODCACHE string
	// MaxFileBytes bounds a file that is parsed and chunked; larger ones
	// are listed but give no context. 0: 1 MiB.
	MaxFileBytes int
}

func (o Options) withDefaults() Options {
	if o.GOROOT == "" {
		o.GOROOT = build.Default.GOROOT
	}
	if o.GOMODCACHE == "" {
		o.GOMODCACHE = os.Getenv("GOMODCACHE")
	}
	if o.GOMODCACHE == "" && build.Default.GOPATH != "" {
		gp := filepath.SplitList(build.Default.GOPATH)
		o.GOMODCACHE = filepath.Join(gp[0], "pkg", "mod")
	}
	if o.MaxFileBytes <= 0 {
		o.MaxFileBytes = 1 << 20
	}
	return o
}

// Package is an immutable snapshot of one directory's package.
type Package struct {
	Dir    string
	Name   string // the package clause most of its files have
	Module *Module
	// Files are the directory's .go files (not _test.go ones of another
	// package name), sorted by path, the open documents' text in place of
	// the disk's.
	Files []*File
	// Imports are the exported APIs of what the files import, by import
	// path, as far as they are loaded; a missing one is not loaded yet or
	// could not be found.
	Imports map[string]*API
	// Loaded is set once the files and every import that could be found
	// are in (a package being loaded still answers, with less).
	Loaded bool

	lazy *lazyIndex
}

// File is one file of a Package.
type File struct {
	Path string
	Text string // "" when the file is over Options.MaxFileBytes
	Size int
	// AST is the file as go/parser recovers it (function bodies dropped;
	// nil when too large or not Go at all). Errors, if any, are in Err.
	AST       *ast.File
	Fset      *token.FileSet
	Err       error
	Generated bool
	Overlay   bool // the text is an open document's, not the disk's
	chunks    []chunk
	key       [32]byte // of path and text
}

// Workspace is the Go code of one module (or of a directory outside any).
// It is safe for concurrent use.
type Workspace struct {
	opt    Options
	root   string
	mod    *Module
	ctx    context.Context
	cancel context.CancelFunc
	jobs   chan struct{} // wakes the loader
	done   chan struct{} // closed when the loader has stopped

	mu       sync.Mutex
	overlays map[string]string // absolute path -> text
	large    map[string]int    // absolute path -> size of an overlay too large to parse
	pkgs     map[string]*pkgState
	apis     map[string]*API // import path -> API (nil: not found)
	memo     map[[32]byte]*File
	disk     map[string]diskEntry // files read from disk, by path
}

type pkgState struct {
	snap    *Package
	dirty   bool          // a file changed since snap was taken
	waiters chan struct{} // closed when a loaded snapshot is published
}

// New starts the workspace of the module rooted at root (the directory of
// a go.mod, or any directory). Close stops it.
func New(root string, o Options) *Workspace {
	ctx, cancel := context.WithCancel(context.Background())
	w := &Workspace{
		opt:      o.withDefaults(),
		root:     filepath.Clean(root),
		ctx:      ctx,
		cancel:   cancel,
		jobs:     make(chan struct{}, 1),
		done:     make(chan struct{}),
		overlays: map[string]string{},
		large:    map[string]int{},
		pkgs:     map[string]*pkgState{},
		apis:     map[string]*API{},
		memo:     map[[32]byte]*File{},
		disk:     map[string]diskEntry{},
	}
	w.mod = readModule(w.root)
	go w.loader()
	return w
}

// Root is the workspace's module root.
func (w *Workspace) Root() string { return w.root }

// Module is the workspace's go.mod as read at start (nil without one).
func (w *Workspace) Module() *Module { return w.mod }

// Close stops the background loading and waits for it to stop.
func (w *Workspace) Close() {
	w.cancel()
	<-w.done
}

// SetOverlay makes text the content of path (an open document's unsaved
// text) until ClearOverlay.
func (w *Workspace) SetOverlay(path, text string) {
	path = filepath.Clean(path)
	w.mu.Lock()
	delete(w.large, path)
	if old, ok := w.overlays[path]; !ok || old != text {
		w.overlays[path] = text
		w.markDirty(filepath.Dir(path))
	}
	w.mu.Unlock()
	w.wake()
}

// SetLargeOverlay says that path is open with size bytes of unsaved text,
// more than Options.MaxFileBytes: it is listed, not parsed, so the caller
// need not make a string of it on every keystroke (an editor's 20 MB
// document). A smaller size is ignored (give the text with SetOverlay).
func (w *Workspace) SetLargeOverlay(path string, size int) {
	if size <= w.opt.MaxFileBytes {
		return
	}
	path = filepath.Clean(path)
	w.mu.Lock()
	delete(w.overlays, path)
	if old, ok := w.large[path]; !ok || old != size {
		w.large[path] = size
		w.markDirty(filepath.Dir(path))
	}
	w.mu.Unlock()
	w.wake()
}

// MaxFileBytes is the largest file the workspace parses.
func (w *Workspace) MaxFileBytes() int { return w.opt.MaxFileBytes }

// ClearOverlay puts path back to its content on disk.
func (w *Workspace) ClearOverlay(path string) {
	path = filepath.Clean(path)
	w.mu.Lock()
	_, ok := w.overlays[path]
	_, big := w.large[path]
	if ok || big {
		delete(w.overlays, path)
		delete(w.large, path)
		w.markDirty(filepath.Dir(path))
	}
	w.mu.Unlock()
	w.wake()
}

// Overlays returns the paths that have an overlay, sorted.
func (w *Workspace) Overlays() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []string
	for p := range w.overlays {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

// OverlayText returns path's overlay, if it has one.
func (w *Workspace) OverlayText(path string) (string, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	t, ok := w.overlays[filepath.Clean(path)]
	return t, ok
}

func (w *Workspace) markDirty(dir string) {
	if st := w.pkgs[dir]; st != nil {
		st.dirty = true
	}
}

// Package returns the latest snapshot of the package of the directory
// holding path, without waiting: before the first load it is an empty
// Package of that directory. It starts (re)loading when needed.
func (w *Workspace) Package(path string) *Package {
	dir := filepath.Dir(filepath.Clean(path))
	w.mu.Lock()
	st := w.state(dir)
	snap := st.snap
	w.mu.Unlock()
	w.wake()
	if snap == nil {
		return &Package{Dir: dir, Module: w.mod}
	}
	return snap
}

// Wait returns the snapshot of path's package once it is loaded and up to
// date with the overlays, or the latest one when ctx ends first. The
// command line's evaluation waits; an editor's request does not.
func (w *Workspace) Wait(ctx context.Context, path string) *Package {
	dir := filepath.Dir(filepath.Clean(path))
	for {
		w.mu.Lock()
		st := w.state(dir)
		if st.snap != nil && st.snap.Loaded && !st.dirty {
			snap := st.snap
			w.mu.Unlock()
			return snap
		}
		ch := st.waiters
		w.mu.Unlock()
		w.wake()
		select {
		case <-ch:
		case <-ctx.Done():
			return w.Package(path)
		case <-w.ctx.Done():
			return w.Package(path)
		}
	}
}

// state returns dir's state, creating it (to be loaded). w.mu is held.
func (w *Workspace) state(dir string) *pkgState {
	st := w.pkgs[dir]
	if st == nil {
		st = &pkgState{dirty: true, waiters: make(chan struct{})}
		w.pkgs[dir] = st
	}
	return st
}

func (w *Workspace) wake() {
	select {
	case w.jobs <- struct{}{}:
	default:
	}
}

// loader loads dirty packages, one at a time, until Close.
func (w *Workspace) loader() {
	defer close(w.done)
	for {
		select {
		case <-w.ctx.Done():
			return
		case <-w.jobs:
		}
		// Edits come in bursts while the user types: let a burst end
		// before reloading (a first load does not wait).
		if w.reloading() {
			select {
			case <-w.ctx.Done():
				return
			case <-time.After(reloadQuiet):
			}
		}
		for w.ctx.Err() == nil {
			dir, ok := w.nextDirty()
			if !ok {
				break
			}
			w.safeLoad(dir)
		}
	}
}

// reloadQuiet is how long the loader lets edits settle before a reload.
const reloadQuiet = 100 * time.Millisecond

// reloading reports whether every dirty package already has a snapshot.
func (w *Workspace) reloading() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, st := range w.pkgs {
		if st.dirty && st.snap == nil {
			return false
		}
	}
	return true
}

func (w *Workspace) nextDirty() (string, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	var dirs []string
	for d, st := range w.pkgs {
		if st.dirty {
			dirs = append(dirs, d)
		}
	}
	if len(dirs) == 0 {
		return "", false
	}
	sort.Strings(dirs)
	return dirs[0], true
}

// safeLoad loads dir; should a parser or printer panic on some input, the
// package gets an empty loaded snapshot instead of taking the process down.
func (w *Workspace) safeLoad(dir string) {
	defer func() {
		if recover() != nil {
			w.publish(dir, &Package{Dir: dir, Module: w.mod, Imports: map[string]*API{}, Loaded: true}, true)
		}
	}()
	w.load(dir)
}

// load takes a new snapshot of dir: its files first (published at once,
// so that requests get them while imports load), then its imports.
func (w *Workspace) load(dir string) {
	w.mu.Lock()
	w.pkgs[dir].dirty = false
	overlays := map[string]string{}
	for p, t := range w.overlays {
		if filepath.Dir(p) == dir {
			overlays[p] = t
		}
	}
	large := map[string]int{}
	for p, n := range w.large {
		if filepath.Dir(p) == dir {
			large[p] = n
		}
	}
	w.mu.Unlock()

	files := w.readFiles(dir, overlays, large)
	pkg := &Package{Dir: dir, Module: w.mod, Files: files, Name: packageName(files), Imports: map[string]*API{}, lazy: &lazyIndex{}}
	imports := importsOf(pkg)
	w.mu.Lock()
	for _, ip := range imports {
		if api, ok := w.apis[ip]; ok && api != nil {
			pkg.Imports[ip] = api
		}
	}
	w.mu.Unlock()
	w.publish(dir, pkg, false)

	for _, ip := range imports {
		if w.ctx.Err() != nil {
			return
		}
		w.mu.Lock()
		_, known := w.apis[ip]
		w.mu.Unlock()
		if known {
			continue
		}
		api := w.loadAPI(ip)
		w.mu.Lock()
		w.apis[ip] = api
		w.mu.Unlock()
	}
	next := *pkg
	next.Imports = map[string]*API{}
	next.lazy = &lazyIndex{}
	w.mu.Lock()
	for _, ip := range imports {
		if api := w.apis[ip]; api != nil {
			next.Imports[ip] = api
		}
	}
	w.mu.Unlock()
	next.Loaded = true
	w.publish(dir, &next, true)
}

func (w *Workspace) publish(dir string, pkg *Package, loaded bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	st := w.pkgs[dir]
	st.snap = pkg
	if loaded && !st.dirty {
		close(st.waiters)
		st.waiters = make(chan struct{})
	}
	if loaded {
		w.sweepMemo()
	}
}

// sweepMemo keeps the memoised files that some snapshot still holds, so
// that old versions of an edited document do not pile up. w.mu is held.
func (w *Workspace) sweepMemo() {
	live := map[[32]byte]bool{}
	for _, st := range w.pkgs {
		if st.snap == nil {
			continue
		}
		for _, f := range st.snap.Files {
			live[fileKey(f.Path, f.Text)] = true
		}
	}
	for k := range w.memo {
		if !live[k] {
			delete(w.memo, k)
		}
	}
}

func fileKey(path, text string) [32]byte {
	h := sha256.New()
	h.Write([]byte(path))
	h.Write([]byte{0})
	h.Write([]byte(text))
	var k [32]byte
	h.Sum(k[:0])
	return k
}

// readFiles reads dir's .go files, overlays in place of the disk (and
// overlays of files not on disk yet added).
func (w *Workspace) readFiles(dir string, overlays map[string]string, large map[string]int) []*File {
	names := map[string]bool{}
	if ents, err := os.ReadDir(dir); err == nil {
		for _, e := range ents {
			if !e.IsDir() && strings.HasSuffix(e.Name(), ".go") {
				names[filepath.Join(dir, e.Name())] = true
			}
		}
	}
	for p := range overlays {
		if strings.HasSuffix(p, ".go") {
			names[p] = true
		}
	}
	for p := range large {
		if strings.HasSuffix(p, ".go") {
			names[p] = true
		}
	}
	var paths []string
	for p := range names {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	var files []*File
	for _, p := range paths {
		if w.ctx.Err() != nil {
			break
		}
		if n, ok := large[p]; ok {
			files = append(files, &File{Path: p, Size: n, Overlay: true})
			continue
		}
		text, overlay := overlays[p]
		if !overlay {
			info, err := os.Stat(p)
			if err != nil || !info.Mode().IsRegular() {
				continue
			}
			if info.Size() > int64(w.opt.MaxFileBytes) {
				files = append(files, &File{Path: p, Size: int(info.Size())})
				continue
			}
			// Unchanged on disk (size and time): not read again, so that a
			// keystroke in one file does not re-read the package.
			stamp := diskStamp{info.Size(), info.ModTime().UnixNano()}
			w.mu.Lock()
			d, ok := w.disk[p]
			w.mu.Unlock()
			if ok && d.stamp == stamp {
				files = append(files, d.file)
				continue
			}
			b, err := os.ReadFile(p)
			if err != nil {
				continue
			}
			text = string(b)
		}
		f := w.file(p, text, overlay)
		if !overlay {
			info, err := os.Stat(p)
			if err == nil && info.Size() == int64(len(text)) {
				w.mu.Lock()
				w.disk[p] = diskEntry{diskStamp{info.Size(), info.ModTime().UnixNano()}, f}
				w.mu.Unlock()
			}
		}
		files = append(files, f)
	}
	return files
}

type diskStamp struct{ size, mtime int64 }

type diskEntry struct {
	stamp diskStamp
	file  *File
}

// file parses one file, memoised by path and content.
func (w *Workspace) file(path, text string, overlay bool) *File {
	if len(text) > w.opt.MaxFileBytes {
		return &File{Path: path, Size: len(text), Overlay: overlay}
	}
	k := fileKey(path, text)
	w.mu.Lock()
	f := w.memo[k]
	w.mu.Unlock()
	if f != nil {
		return f
	}
	f = &File{Path: path, Text: text, Size: len(text), Overlay: overlay, Fset: token.NewFileSet(), key: k}
	f.AST, f.Err = parser.ParseFile(f.Fset, path, text, parser.SkipObjectResolution|parser.ParseComments)
	if f.AST != nil {
		f.Generated = ast.IsGenerated(f.AST)
		dropBodies(f.AST)
	}
	f.chunks = chunkFile(text)
	w.mu.Lock()
	w.memo[k] = f
	w.mu.Unlock()
	return f
}

// dropBodies keeps declarations only: what a package offers its other
// files is its signatures and types, and bodies are most of the memory.
func dropBodies(f *ast.File) {
	for _, d := range f.Decls {
		if fd, ok := d.(*ast.FuncDecl); ok {
			fd.Body = nil
		}
	}
}

// packageName is the package clause of most files, _test packages aside.
func packageName(files []*File) string {
	count := map[string]int{}
	for _, f := range files {
		if f.AST != nil && f.AST.Name != nil && f.AST.Name.Name != "" && f.AST.Name.Name != "_" && !strings.HasSuffix(f.AST.Name.Name, "_test") {
			count[f.AST.Name.Name]++
		}
	}
	best := ""
	for n, c := range count {
		if c > count[best] || c == count[best] && n < best {
			best = n
		}
	}
	return best
}

// importsOf lists the import paths of a package's files, sorted.
func importsOf(p *Package) []string {
	set := map[string]bool{}
	for _, f := range p.Files {
		if f.AST == nil {
			continue
		}
		for _, is := range f.AST.Imports {
			if ip := strings.Trim(is.Path.Value, "`\""); ip != "" && ip != "C" && ip != "unsafe" {
				set[ip] = true
			}
		}
	}
	var out []string
	for ip := range set {
		out = append(out, ip)
	}
	sort.Strings(out)
	return out
}

// FindRoot returns the module root of path: the nearest directory above it
// holding a go.mod, or path's own directory when there is none.
func FindRoot(path string) string {
	dir := filepath.Dir(filepath.Clean(path))
	for d := dir; ; {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d
		}
		up := filepath.Dir(d)
		if up == d {
			return dir
		}
		d = up
	}
}
