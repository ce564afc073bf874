// Package train holds the Python pipeline that trains diffill's built-in
// model (see README.md); it has no Go code. Its Go test runs the pipeline's
// Python unit tests, so that `go test ./...` covers them.
package train

import (
	"os"
	"os/exec"
	"testing"
)

// python returns a Python with torch and numpy, or skips (fails under
// DIFFILL_E2E=1, as in CI).
func python(t *testing.T) string {
	t.Helper()
	// Debian's python3-torch lives in /usr/bin/python3; a python3 earlier on
	// PATH (pyenv) may lack it.
	for _, p := range []string{"/usr/bin/python3", "python3"} {
		if err := exec.Command(p, "-c", "import torch, numpy").Run(); err == nil {
			return p
		}
	}
	msg := "no python3 with torch and numpy: apt-get install -y python3-torch python3-numpy python3-regex libopenblas0-pthread"
	if os.Getenv("DIFFILL_E2E") == "1" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

func TestPythonPipeline(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	py := python(t)
	cmd := exec.Command(py, "-m", "unittest", "discover", "-s", ".", "-p", "test_*.py")
	cmd.Env = append(os.Environ(), "OMP_NUM_THREADS=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s -m unittest: %v\n%s", py, err, out)
	}
	t.Logf("%s", out)
}
