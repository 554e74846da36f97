module github.com/wwebstore/wwebstore

go 1.26
