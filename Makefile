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

# Many clients, faults and kills for SOAK_SECONDS s; ends with a table.
SOAK_SECONDS ?= 600
soak: all
	(cd regress && $(MAKE) soak SOAK_SECONDS=$(SOAK_SECONDS))

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

.PHONY: all deps test bench soak fuzz demo install clean
