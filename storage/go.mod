module github.com/commitlog-go/commitlog/storage

go 1.26
