// Prints golang.org/x/text's loose collation key (the one Vitess's unicode_loose vindexes hash)
// of every code point, or with the argument "strings", of each line of stdin. See README.md.
package main

import (
	"bufio"
	"fmt"
	"os"
	"unicode/utf8"

	"golang.org/x/text/collate"
	"golang.org/x/text/language"
)

func main() {
	col := collate.New(language.English, collate.Loose)
	buf := new(collate.Buffer)
	w := bufio.NewWriter(os.Stdout)
	defer w.Flush()
	if len(os.Args) > 1 && os.Args[1] == "strings" {
		sc := bufio.NewScanner(os.Stdin)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Bytes()
			k := col.Key(buf, line)
			fmt.Fprintf(w, "%x\n", k)
			buf.Reset()
		}
		return
	}
	for r := rune(0); r <= 0x10FFFF; r++ {
		if r >= 0xD800 && r <= 0xDFFF {
			continue
		}
		b := make([]byte, 4)
		n := utf8.EncodeRune(b, r)
		k := col.Key(buf, b[:n])
		fmt.Fprintf(w, "%x %x\n", r, k)
		buf.Reset()
	}
}
