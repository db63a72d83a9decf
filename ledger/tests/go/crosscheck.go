// Independent verification of sluice-ledger output with golang.org/x/mod/sumdb/note and sumdb/tlog.
// Usage: go run crosscheck.go DIR
// DIR holds: vkey, count, proof-N.txt, leaf-N.bin, consistency-N.txt, old-N.checkpoint.
// Also writes go-vkey and go-note (a checkpoint signed by Go) for the Rust side to verify.
package main

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "GO-FAIL: "+format+"\n", args...)
	os.Exit(1)
}

func read(path string) []byte {
	b, err := os.ReadFile(path)
	if err != nil {
		fail("%v", err)
	}
	return b
}

type checkpoint struct {
	origin string
	size   int64
	root   tlog.Hash
}

func openCheckpoint(v note.Verifier, msg []byte) checkpoint {
	n, err := note.Open(msg, note.VerifierList(v))
	if err != nil {
		fail("note.Open: %v", err)
	}
	lines := strings.Split(n.Text, "\n")
	if len(lines) < 4 || lines[len(lines)-1] != "" {
		fail("checkpoint body %q", n.Text)
	}
	size, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil {
		fail("size: %v", err)
	}
	raw, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil || len(raw) != 32 {
		fail("root %q", lines[2])
	}
	var root tlog.Hash
	copy(root[:], raw)
	return checkpoint{lines[0], size, root}
}

func hashes(lines []string) []tlog.Hash {
	var out []tlog.Hash
	for _, l := range lines {
		raw, err := base64.StdEncoding.DecodeString(l)
		if err != nil || len(raw) != 32 {
			fail("hash %q", l)
		}
		var h tlog.Hash
		copy(h[:], raw)
		out = append(out, h)
	}
	return out
}

// splitProof returns the header lines and the checkpoint of a proof file.
func splitProof(text string) ([]string, []byte) {
	i := strings.Index(text, "\n\n")
	if i < 0 {
		fail("no blank line")
	}
	return strings.Split(text[:i], "\n"), []byte(text[i+2:])
}

func main() {
	dir := os.Args[1]
	v, err := note.NewVerifier(strings.TrimSpace(string(read(dir + "/vkey"))))
	if err != nil {
		fail("NewVerifier: %v", err)
	}
	count, _ := strconv.Atoi(strings.TrimSpace(string(read(dir + "/count"))))
	checked := 0
	for i := 0; i < count; i++ {
		header, cp := splitProof(string(read(fmt.Sprintf("%s/proof-%d.txt", dir, i))))
		if header[0] != "c2sp.org/tlog-proof@v1" || !strings.HasPrefix(header[1], "index ") {
			fail("proof header %q", header)
		}
		index, _ := strconv.ParseInt(strings.TrimPrefix(header[1], "index "), 10, 64)
		c := openCheckpoint(v, cp)
		leaf := read(fmt.Sprintf("%s/leaf-%d.bin", dir, i))
		p := tlog.RecordProof(hashes(header[2:]))
		if err := tlog.CheckRecord(p, c.size, c.root, index, tlog.RecordHash(leaf)); err != nil {
			fail("CheckRecord index %d size %d: %v", index, c.size, err)
		}
		bad := append([]byte{}, leaf...)
		bad[0] ^= 1
		if tlog.CheckRecord(p, c.size, c.root, index, tlog.RecordHash(bad)) == nil {
			fail("CheckRecord accepted a damaged leaf")
		}
		checked++

		cheader, ccp := splitProof(string(read(fmt.Sprintf("%s/consistency-%d.txt", dir, i))))
		if cheader[0] != "sluice-ledger/consistency-proof@v1" {
			fail("consistency header %q", cheader[0])
		}
		oldSize, _ := strconv.ParseInt(strings.TrimPrefix(cheader[1], "old "), 10, 64)
		newer := openCheckpoint(v, ccp)
		old := openCheckpoint(v, read(fmt.Sprintf("%s/old-%d.checkpoint", dir, i)))
		if old.size != oldSize {
			fail("old size %d != %d", old.size, oldSize)
		}
		if err := tlog.CheckTree(tlog.TreeProof(hashes(cheader[2:])), newer.size, newer.root, old.size, old.root); err != nil {
			fail("CheckTree %d -> %d: %v", old.size, newer.size, err)
		}
		checked++
	}
	// A note signed by Go, for the Rust verifier.
	skey, vkey, err := note.GenerateKey(rand.Reader, "go.example/log")
	if err != nil {
		fail("GenerateKey: %v", err)
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		fail("NewSigner: %v", err)
	}
	text := "go.example/log\n3\n" + base64.StdEncoding.EncodeToString(make([]byte, 32)) + "\n"
	msg, err := note.Sign(&note.Note{Text: text}, signer)
	if err != nil {
		fail("Sign: %v", err)
	}
	os.WriteFile(dir+"/go-vkey", []byte(vkey+"\n"), 0o644)
	os.WriteFile(dir+"/go-skey", []byte(skey+"\n"), 0o600)
	os.WriteFile(dir+"/go-note", msg, 0o644)
	fmt.Printf("GO-OK %d checks\n", checked)
}
