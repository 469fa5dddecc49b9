module example.com/raft-kv

go 1.26.0

require github.com/commitlog-go/commitlog/consensus v0.1.0
