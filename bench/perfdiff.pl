#!/usr/bin/perl
# perfdiff.pl - where the module's extra time per request goes, from two
# `perf record -p` profiles (of the server's children) taken by
# bench/run.sh --perf during the same wrk load (4 KB hit) on node A and on
# native httpd.
#
#   perl bench/perfdiff.pl MODULE.data MODULE_REQUESTS NATIVE.data NATIVE_REQUESTS
#
# Converts samples into CPU microseconds per request (sample period =
# 1/frequency of cpu-clock sampling, read from the data) and prints, for
# each DSO and then each symbol, module vs native and the difference,
# largest differences first.
use strict;
use warnings;

my ($mdata, $mreq, $ndata, $nreq) = @ARGV;
die "usage: $0 MODULE.data MODULE_REQUESTS NATIVE.data NATIVE_REQUESTS\n"
    unless defined $nreq;

sub load {
    my ($data, $sort) = @_;
    my %h;
    open my $fh, '-|', 'perf', 'report', '-i', $data, '--no-children',
        '--stdio', '-n', '-g', 'none', '--sort', $sort
        or die "perf report: $!";
    while (<$fh>) {
        next if /^#/ || /^\s*$/;
        my ($pct, $n, @rest) = split ' ', $_;
        next unless defined $n && $n =~ /^\d+$/;
        my $key = join ' ', @rest;
        next if $key =~ /^swapper\b/;
        $h{$key} += $n;
    }
    close $fh;
    return \%h;
}

sub freq_of {
    my ($data) = @_;
    my $f;
    open my $fh, '-|', "perf evlist -F -i '$data' 2>/dev/null" or return 4000;
    while (<$fh>) { $f = $1 if /sample_freq=(\d+)/; }
    close $fh;
    return $f || 4000;
}

my $fm = freq_of($mdata);
my $fn = freq_of($ndata);
for my $sort ('comm,dso', 'comm,dso,sym') {
    my $m = load($mdata, $sort);
    my $n = load($ndata, $sort);
    my %all = (%$m, %$n);
    my (%us_m, %us_n);
    my ($tm, $tn) = (0, 0);
    for my $k (keys %all) {
        $us_m{$k} = ($m->{$k} || 0) / $fm * 1e6 / $mreq;
        $us_n{$k} = ($n->{$k} || 0) / $fn * 1e6 / $nreq;
        $tm += $us_m{$k};
        $tn += $us_n{$k};
    }
    my @keys = sort { ($us_m{$b} - $us_n{$b}) <=> ($us_m{$a} - $us_n{$a}) } keys %all;
    printf "\n## CPU microseconds per request by %s\n\n", $sort;
    printf "%8s %8s %8s  %s\n", 'module', 'native', 'diff', 'what';
    printf "%8.2f %8.2f %+8.2f  %s\n", $tm, $tn, $tm - $tn, 'TOTAL';
    my $lines = $sort eq 'comm,dso' ? 15 : 30;
    for my $k (@keys[0 .. ($#keys < $lines - 1 ? $#keys : $lines - 1)]) {
        printf "%8.2f %8.2f %+8.2f  %s\n", $us_m{$k}, $us_n{$k}, $us_m{$k} - $us_n{$k}, $k;
    }
}
