#!/usr/bin/env bash
# check-log-tags.sh - every log message of the module carries a tag
# CSLOG(nnn) that occurs at exactly one call site, and every tag is a row of
# the README's table ("Observe"), which lists no tag the code does not use.
# An operator's log line thus leads to one line of code and one
# explanation.  Exits 1 and names each duplicate, missing or stale tag.
set -euo pipefail
cd "$(dirname "$0")/.."
exec perl -e '
    use strict;
    use warnings;
    my (%sites, @bad);
    for my $f (sort glob("src/*.c")) {
        open my $fh, "<", $f or die "$f: $!";
        while (my $line = <$fh>) {
            while ($line =~ /CSLOG\((\d+)\)/g) {
                push @{ $sites{$1} }, "$f:$.";
            }
        }
    }
    die "no CSLOG tags found under src/\n" unless %sites;
    for my $t (sort keys %sites) {
        my @s = @{ $sites{$t} };
        push @bad, "CS$t is used at " . scalar(@s) . " call sites: @s"
            if @s > 1;
    }
    open my $r, "<", "README.md" or die "README.md: $!";
    my %doc;
    while (my $line = <$r>) {
        $doc{$1}++ if $line =~ /^\|\s*CS(\d{3})\s*\|/;
    }
    for my $t (sort keys %sites) {
        push @bad, "CS$t ($sites{$t}[0]) is not in the README table"
            unless $doc{$t};
    }
    for my $t (sort keys %doc) {
        push @bad, "CS$t is in the README table but not in the code"
            unless $sites{$t};
        push @bad, "CS$t is listed $doc{$t} times in the README"
            if $doc{$t} > 1;
    }
    if (@bad) {
        print STDERR "log tag check failed:\n", map { "  $_\n" } @bad;
        exit 1;
    }
    printf "log tags: %d, each at one call site and in the README\n",
        scalar keys %sites;
'
