package casbin_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/commitlog-go/commitlog/authz"
	"github.com/commitlog-go/commitlog/authz/casbin"
)

// BenchmarkAuthorize measures one decision against policies of growing size
// (casbin scans the rules linearly), for an allowed and a denied subject.
func BenchmarkAuthorize(b *testing.B) {
	for _, rules := range []int{2, 100, 1000} {
		var sb strings.Builder
		for i := range rules - 1 {
			fmt.Fprintf(&sb, "p, client-%d, *, consume\n", i)
		}
		sb.WriteString("p, root, *, produce\n")
		policy := writeFile(b, b.TempDir(), "policy.csv", sb.String())
		a, err := casbin.New(casbin.Config{PolicyFile: policy})
		if err != nil {
			b.Fatal(err)
		}
		for _, subject := range []string{"root", "nobody"} {
			b.Run(fmt.Sprintf("rules=%d/%s", rules, subject), func(b *testing.B) {
				ctx := context.Background()
				b.ReportAllocs()
				for b.Loop() {
					_ = a.Authorize(ctx, subject, authz.ObjectAll, authz.ActionProduce)
				}
			})
		}
	}
}
