module example.com/client-app

go 1.26.0

require github.com/commitlog-go/commitlog/client v0.1.0
