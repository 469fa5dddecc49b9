module github.com/commitlog-go/commitlog/tools

go 1.26
