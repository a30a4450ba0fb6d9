#!/usr/bin/env bash
# CI entry point: fails when the committed generated code differs from what proto/ and
# codegen/ produce now. See generate.sh.
exec "$(dirname "$0")/generate.sh" --check
