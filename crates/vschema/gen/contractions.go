// Finds x/text's contractions: the pairs and triples of code points whose loose key differs from
// their keys one after another. Reads keys.go's output. See README.md.
package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/text/collate"
	"golang.org/x/text/language"
)

// Reads "cp key" lines; prints the pairs (and triples) whose key is not the concatenation.
func main() {
	col := collate.New(language.English, collate.Loose)
	buf := new(collate.Buffer)
	keys := map[rune][]byte{}
	var explicit, ignorable []rune
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		f := strings.SplitN(sc.Text(), " ", 2)
		cp, _ := strconv.ParseUint(f[0], 16, 32)
		k := []byte{}
		fmt.Sscanf(f[1], "%x", &k)
		r := rune(cp)
		keys[r] = k
		if len(k) != 6 {
			explicit = append(explicit, r)
		}
		if len(k) == 0 {
			ignorable = append(ignorable, r)
		}
	}
	key := func(s string) []byte {
		k := append([]byte{}, col.KeyFromString(buf, s)...)
		buf.Reset()
		return k
	}
	w := bufio.NewWriter(os.Stdout)
	defer w.Flush()
	var pairs []string
	for _, a := range explicit {
		if len(keys[a]) == 0 {
			continue
		}
		try := func(b rune) {
			s := string([]rune{a, b})
			want := append(append([]byte{}, keys[a]...), keys[b]...)
			if k := key(s); !bytes.Equal(k, want) {
				fmt.Fprintf(w, "%x %x %x\n", a, b, k)
				pairs = append(pairs, s)
			}
		}
		for _, b := range ignorable {
			try(b)
		}
		for b := a - 0x100; b <= a+0x100; b++ {
			if k, ok := keys[b]; ok && len(k) > 0 && len(k) != 6 {
				try(b)
			}
		}
	}
	// Triples: a found pair followed by a third.
	for _, p := range pairs {
		pk := key(p)
		rs := []rune(p)
		for c := rs[0] - 0x100; c <= rs[0]+0x100; c++ {
			k, ok := keys[c]
			if !ok {
				continue
			}
			want := append(append([]byte{}, pk...), k...)
			if got := key(p + string(c)); !bytes.Equal(got, want) {
				fmt.Fprintf(w, "%x %x %x %x\n", rs[0], rs[1], c, got)
			}
		}
		for _, c := range ignorable {
			want := append([]byte{}, pk...)
			if got := key(p + string(c)); !bytes.Equal(got, want) {
				fmt.Fprintf(w, "%x %x %x %x\n", rs[0], rs[1], c, got)
			}
		}
	}
}
