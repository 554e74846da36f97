module github.com/wwebstore/wwebstore/cmd/wwebstore

go 1.26

require github.com/wwebstore/wwebstore v0.0.0

require github.com/klauspost/compress v1.20.4 // indirect

replace github.com/wwebstore/wwebstore => ../..
