module github.com/commitlog-go/commitlog/discovery

go 1.26
