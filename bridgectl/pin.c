/* pin.c: being split out; see the report. */
