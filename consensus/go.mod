module github.com/commitlog-go/commitlog/consensus

go 1.26
