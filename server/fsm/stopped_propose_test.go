package fsm

import (
	"context"
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/consensus"
	"github.com/commitlog-go/commitlog/storage/memory"
)

// TestStoppedLeaderProposesNothing: once this node's state machine stopped applying (its log
// refused a committed entry), a leader proposes no later write: each would be committed on
// the others and fail here, so its caller could only be told the outcome is unknown, and on a
// cluster where every node's disk is full each refused write would still be appended to
// Raft's log, to be stored once the disks are freed. It is refused before proposing
// (ErrStopped, which is not ErrFailed: nothing was committed). A follower still hands it to
// the leader (NotLeader), which may be healthy.
func TestStoppedLeaderProposesNothing(t *testing.T) {
	log := newMemLog(t, memory.Config{MaxRecordBytes: 200})
	t.Cleanup(func() { _ = log.Close() })
	f, err := New(Config{Log: log})
	if err != nil {
		t.Fatal(err)
	}
	p := &applyProposer{f: f, leader: true}
	if _, err := f.Propose(t.Context(), p, AppendRecord{Value: []byte("ok")}); err != nil {
		t.Fatal(err)
	}
	// Committed, refused by this node's log: the state machine stops.
	if _, err := f.Propose(t.Context(), p, AppendRecord{Value: make([]byte, 1000)}); !errors.Is(err, ErrFailed) {
		t.Fatalf("Propose of an entry the log refuses: %v, want ErrFailed", err)
	}
	proposed := p.proposed
	_, err = f.Propose(t.Context(), p, AppendRecord{Value: []byte("later")})
	if !errors.Is(err, ErrStopped) || errors.Is(err, ErrFailed) || p.proposed != proposed {
		t.Fatalf("Propose on a stopped leader: %v (%d proposals, %d before); want ErrStopped, nothing proposed", err, p.proposed, proposed)
	}
	if _, err := f.ProposeRetention(t.Context(), p, 1); !errors.Is(err, ErrStopped) || p.proposed != proposed {
		t.Fatalf("ProposeRetention on a stopped leader: %v (%d proposals, %d before)", err, p.proposed, proposed)
	}
	p.leader = false
	if _, err := f.Propose(t.Context(), p, AppendRecord{Value: []byte("later")}); errors.Is(err, ErrStopped) || p.proposed != proposed+1 {
		t.Fatalf("Propose on a stopped follower: %v (%d proposals); want it handed to the leader", err, p.proposed)
	}
}

// TestStoppedMachineLeaderProposesNothing: the same through the Machine: after a partition's
// log failed, a leader proposes nothing through any of its proposal paths (appends, retention,
// topics, groups, producers), and a follower still hands each to the leader.
func TestStoppedMachineLeaderProposesNothing(t *testing.T) {
	ctx := t.Context()
	n := openMachineNode(t, t.TempDir())
	n.produce(DefaultTopic, 0, AppendRecord{Value: []byte("ok")})
	topic, err := n.m.CreateTopic(ctx, n, "t", 1, TopicConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.m.CommitOffsets(ctx, n, "g", []GroupOffset{{Topic: "t", Offset: 0}}); err != nil {
		t.Fatal(err)
	}
	n.m.fail(errors.New("disk full"))

	retentionMs := int64(1000)
	paths := []struct {
		name    string
		propose func(Proposer) error
	}{
		{"ProposeAppend", func(c Proposer) error {
			_, err := n.m.ProposeAppend(ctx, c, DefaultTopic, 0, ProducerRef{}, AppendRecord{Value: []byte("later")})
			return err
		}},
		{"ProposeRetention", func(c Proposer) error {
			_, err := n.m.ProposeRetention(ctx, c, Target{Topic: topic.ID}, 0)
			return err
		}},
		{"CreateTopic", func(c Proposer) error {
			_, err := n.m.CreateTopic(ctx, c, "u", 1, TopicConfig{})
			return err
		}},
		{"DeleteTopic", func(c Proposer) error { _, err := n.m.DeleteTopic(ctx, c, "t"); return err }},
		{"CreatePartitions", func(c Proposer) error { _, err := n.m.CreatePartitions(ctx, c, "t", 2); return err }},
		{"AlterTopic", func(c Proposer) error {
			_, err := n.m.AlterTopic(ctx, c, "t", TopicConfigPatch{RetentionMs: &retentionMs})
			return err
		}},
		{"CommitOffsets", func(c Proposer) error {
			_, err := n.m.CommitOffsets(ctx, c, "g", []GroupOffset{{Topic: "t", Offset: 1}})
			return err
		}},
		{"DeleteGroup", func(c Proposer) error { return n.m.DeleteGroup(ctx, c, "g") }},
		{"ExpireOffsets", func(c Proposer) error {
			_, err := n.m.ExpireOffsets(ctx, c, []string{"g"}, time.Now())
			return err
		}},
		{"ClaimProducer", func(c Proposer) error { _, err := n.m.ClaimProducer(ctx, c, 1, "client"); return err }},
		{"InitProducer", func(c Proposer) error { _, err := n.m.InitProducer(ctx, c, 0); return err }},
	}
	for _, p := range paths {
		before := n.index
		if err := p.propose(n); !errors.Is(err, ErrStopped) || errors.Is(err, ErrFailed) {
			t.Errorf("%s on a stopped leader: %v, want ErrStopped", p.name, err)
		}
		if n.index != before {
			t.Errorf("%s on a stopped leader proposed %d entries", p.name, n.index-before)
		}
		f := &followerProposer{}
		if err := p.propose(f); !errors.Is(err, consensus.ErrNotLeader) || f.proposed != 1 {
			t.Errorf("%s on a stopped follower: %v (%d proposals); want it handed to the leader", p.name, err, f.proposed)
		}
	}
}

// followerProposer is a follower: it counts what it is asked to propose and answers NotLeader.
type followerProposer struct{ proposed int }

func (f *followerProposer) Propose(context.Context, []byte) (any, error) {
	f.proposed++
	return nil, &consensus.NotLeaderError{Leader: f.leader()}
}

func (f *followerProposer) IsLeader() bool { return false }

func (f *followerProposer) Leader() (consensus.Server, bool) { return f.leader(), true }

func (*followerProposer) leader() consensus.Server {
	return consensus.Server{ID: "n1", Address: "n1:1"}
}

// TestOnlyProposeProposes: package fsm proposes in one function, propose, which refuses every
// command on a stopped leader; a proposal path that called a Proposer's Propose itself could
// miss that check. It reads the package's source: no other function names a Propose method
// (called or taken as a value). The package's own exported Propose methods are not called in
// it either, so a name match is exact enough.
func TestOnlyProposeProposes(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	checked := 0
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		checked++
		for _, d := range f.Decls {
			fn, ok := d.(*ast.FuncDecl)
			if ok && fn.Recv == nil && fn.Name.Name == "propose" {
				continue
			}
			ast.Inspect(d, func(x ast.Node) bool {
				if sel, ok := x.(*ast.SelectorExpr); ok && sel.Sel.Name == "Propose" {
					t.Errorf("%s: Propose named outside propose: propose through propose, which refuses commands on a stopped leader", fset.Position(sel.Pos()))
				}
				return true
			})
		}
	}
	if checked == 0 {
		t.Fatal("no source file read")
	}
}
