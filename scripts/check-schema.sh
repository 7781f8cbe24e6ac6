#!/usr/bin/env bash
# check-schema.sh - conf/schema.sql must be the same DDL as cs_schema[] in
# src/registry.c (the module creates its tables itself; schema.sql is the copy
# for DBAs).  Compares the two with whitespace and ';' ignored; exits 1 and
# prints both when they differ.
set -euo pipefail
cd "$(dirname "$0")/.."
exec perl -e '
    local $/;
    open my $c, "<", "src/registry.c" or die "src/registry.c: $!";
    my ($body) = <$c> =~ /cs_schema\[\]\s*=\s*\{(.*?)NULL\s*\};/s
        or die "cs_schema not found in src/registry.c\n";
    my $from_c = join "", $body =~ /"((?:[^"\\]|\\.)*)"/g;
    open my $s, "<", "conf/schema.sql" or die "conf/schema.sql: $!";
    my $sql = join "\n", grep { !/^\s*--/ } split /\n/, <$s>;
    my $norm = sub { my $x = shift; $x =~ s/[\s;]+//g; $x };
    if ($norm->($from_c) eq $norm->($sql)) {
        print "conf/schema.sql matches cs_schema in src/registry.c\n";
        exit 0;
    }
    (my $pretty = $from_c) =~ s/(CREATE TABLE)/\n$1/g;
    print STDERR "conf/schema.sql differs from cs_schema in src/registry.c\n",
        "src/registry.c:$pretty\n\nconf/schema.sql:\n$sql\n";
    exit 1;
'
