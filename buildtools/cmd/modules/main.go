// Command modules keeps the repository's modules consistent with modules.txt, the one list of
// them (see RELEASING.md). Run it from the repository root:
//
//	GOWORK=off go -C buildtools run ./cmd/modules -root .. <command>
//
// Commands:
//
//	list           the module directories, in dependency order
//	check          every module requires only released versions of siblings listed before it;
//	               no go.mod has a replace; the examples require the latest releases
//	work [-check]  write go.work from modules.txt and the go.mod files (-check: fail if it differs)
//	proxy DIR      write a file-system module proxy (GOPROXY=file://DIR) serving the working
//	               tree of every module at its released versions
//	tags           the release tags (<module>/<version>) in release order; -missing: only those
//	               the local repository lacks
//	tag [REV]      create the missing release tags on REV (default HEAD), in release order
//	tidy-examples [-check]
//	               go mod tidy in every example against a proxy of this tree (-check: fail if
//	               anything would change)
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/commitlog-go/commitlog/buildtools/internal/modules"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "modules:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("modules", flag.ContinueOnError)
	root := fs.String("root", ".", "the repository root (where modules.txt is)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return fmt.Errorf("usage: modules [-root DIR] list|check|work [-check]|proxy DIR|tags [-missing]|tag [REV]|tidy-examples [-check]")
	}
	r, err := modules.Load(*root)
	if err != nil {
		return err
	}
	cmd, rest := fs.Arg(0), fs.Args()[1:]
	switch cmd {
	case "list":
		for _, m := range r.Modules {
			fmt.Println(m.Dir)
		}
	case "check":
		return r.Check()
	case "work":
		path := filepath.Join(*root, "go.work")
		want := r.WorkFile()
		if len(rest) == 1 && rest[0] == "-check" {
			got, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			if !bytes.Equal(got, want) {
				return fmt.Errorf("go.work is not what modules.txt and the go.mod files give: run make work and commit")
			}
			return nil
		}
		return os.WriteFile(path, want, 0o644)
	case "proxy":
		if len(rest) != 1 {
			return fmt.Errorf("usage: modules proxy DIR")
		}
		return r.WriteProxy(rest[0])
	case "tags":
		tags := r.Tags()
		if len(rest) == 1 && rest[0] == "-missing" {
			if tags, err = r.MissingTags(); err != nil {
				return err
			}
		}
		if len(tags) > 0 {
			fmt.Println(strings.Join(tags, "\n"))
		}
	case "tidy-examples":
		check := len(rest) == 1 && rest[0] == "-check"
		stale, err := r.TidyExamples(check)
		if err != nil {
			return err
		}
		for _, e := range stale {
			if check {
				fmt.Println("not tidy:", e)
			} else {
				fmt.Println("tidied", e)
			}
		}
		if check && len(stale) > 0 {
			return fmt.Errorf("examples not tidy: run make tidy and commit")
		}
	case "tag":
		rev := "HEAD"
		if len(rest) == 1 {
			rev = rest[0]
		}
		made, err := r.Tag(rev)
		if err != nil {
			return err
		}
		for _, t := range made {
			fmt.Println("tagged", t)
		}
		if len(made) == 0 {
			fmt.Println("every release is tagged already")
		}
	default:
		return fmt.Errorf("unknown command %q", cmd)
	}
	return nil
}
