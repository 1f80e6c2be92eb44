# bridged: read by GNU make and BSD make alike.
PREFIX ?= /usr/local
DESTDIR ?=

all: deps
	(cd lib && $(MAKE))
	(cd bridged && $(MAKE))
	(cd bridgectl && $(MAKE))

deps:
	@sh ./configure

test: all
	(cd regress && $(MAKE) test)

bench: all
	(cd regress && $(MAKE) bench)

# libFuzzer targets with ASan and UBSan: FUZZ_SECONDS s each.
FUZZ_SECONDS ?= 60
fuzz: all
	(cd regress/fuzz && $(MAKE) run FUZZ_SECONDS=$(FUZZ_SECONDS))

demo: all
	sh regress/demo.sh

install: all
	sh ./install.sh "$(DESTDIR)" "$(PREFIX)"

clean:
	(cd lib && $(MAKE) clean)
	(cd bridged && $(MAKE) clean)
	(cd bridgectl && $(MAKE) clean)
	(cd regress && $(MAKE) clean)

.PHONY: all deps test bench fuzz demo install clean
