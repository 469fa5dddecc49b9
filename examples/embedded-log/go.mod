module example.com/embedded-log

go 1.26.0

require github.com/commitlog-go/commitlog/storage v0.1.0

require golang.org/x/sys v0.49.0 // indirect
