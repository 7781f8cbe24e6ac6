#!/usr/bin/perl
# lag.pl - replication lag for bench/run.sh.
#
#   perl bench/lag.pl BASE_URL KEY_PREFIX PEER_DIR RATE SECONDS BODYFILE
#
# PUTs BODYFILE to BASE_URL.KEY_PREFIX."kN.bin" (N = 1, 2, ...) at a steady
# RATE per second for SECONDS (open loop: PUT N is sent at t0 + (N-1)/RATE
# by one of 8 worker processes (one per 10 PUT/s above 80/s), each with its
# own keep-alive connection, so
# a slow answer does not lower the rate) and records the moment each 2xx
# answer arrived.  This process meanwhile watches PEER_DIR (the second
# node's copy of KEY_PREFIX inside its ClusterStorageRoot): a copy appears
# there only by the atomic rename of the complete, verified file, so
# "appears" = "the second holder has it".  It stats only keys already
# answered and not yet seen, every 0.5 ms.  Lag = appeared - answered (a copy
# that appeared before the answer counts as 0).
#
# Prints: puts, failed, rate (achieved), seen, missing (never appeared
# within 20 s), p50/p90/p99/max lag in ms (missing copies count as infinite).
use strict;
use warnings;
use HTTP::Tiny;
use IO::Select;
use POSIX ();
use Time::HiRes qw(clock_gettime CLOCK_MONOTONIC sleep);

my ($base, $prefix, $peerdir, $rate, $secs, $bodyfile) = @ARGV;
die "usage: $0 BASE_URL KEY_PREFIX PEER_DIR RATE SECONDS BODYFILE\n"
    unless defined $bodyfile;
my $n = int($rate * $secs);
# One worker per 10 PUT/s (at least 8): a PUT answered in up to 80 ms
# still leaves each worker on time for its next one.
my $workers = $rate / 10 > 8 ? int($rate / 10 + 0.999) : 8;
my $settle = 20;    # seconds to wait for stragglers after the last answer

sub now { clock_gettime(CLOCK_MONOTONIC) }

open my $bfh, '<:raw', $bodyfile or die "$bodyfile: $!";
my $body = do { local $/; <$bfh> };
close $bfh;

pipe(my $rd, my $wr) or die "pipe: $!";
my $t0 = now() + 0.2;
my @kids;
for my $w (0 .. $workers - 1) {
    my $pid = fork() // die "fork: $!";
    if ($pid) { push @kids, $pid; next; }
    close $rd;
    my $http = HTTP::Tiny->new(keep_alive => 1, timeout => 30);
    for (my $i = $w + 1; $i <= $n; $i += $workers) {
        my $wait = $t0 + ($i - 1) / $rate - now();
        sleep($wait) if $wait > 0;
        my $r = $http->request('PUT', "$base${prefix}k$i.bin",
            { content => $body,
              headers => { 'Content-Type' => 'application/octet-stream' } });
        syswrite($wr, sprintf("%d %.6f %d\n", $i, now(), $r->{status}));
    }
    POSIX::_exit(0);
}
close $wr;

my (%answered, %pending, %seen, %status);
my $sel = IO::Select->new($rd);
my ($eof, $t_last, $buf) = (0, $t0, '');
while (1) {
    if (!$eof && $sel->can_read(0.0005)) {
        my $got = sysread($rd, $buf, 65536, length $buf);
        $eof = 1 if !$got;
        while ($buf =~ s/^(\d+) (\S+) (\d+)\n//) {
            $status{$1} = $3;
            next unless $3 >= 200 && $3 < 300;
            $answered{$1} = $2;
            $t_last = $2 if $2 > $t_last;
            $pending{$1} = 1;
        }
    }
    elsif ($eof) {
        sleep(0.0005);
    }
    for my $i (keys %pending) {
        if (-e "$peerdir/k$i.bin") {
            $seen{$i} = now();
            delete $pending{$i};
        }
    }
    last if $eof && (!%pending || now() - $t_last > $settle);
}
waitpid($_, 0) for @kids;

my @fail = grep { !exists $answered{$_} } keys %status;
printf STDERR "lag.pl: PUT k%d.bin answered %s\n", $_, $status{$_}
    for (sort { $a <=> $b } @fail)[0 .. ($#fail < 4 ? $#fail : 4)];
my @lag = sort { $a <=> $b }
    map { my $d = ($seen{$_} - $answered{$_}) * 1000; $d < 0 ? 0 : $d }
    grep { exists $seen{$_} } keys %answered;
my $missing = keys(%answered) - @lag;
push @lag, (9**9**9) x $missing;
sub pct {
    my ($p) = @_;
    return 'nan' unless @lag;
    my $k = int($p / 100 * @lag + 0.999999) - 1;    # nearest rank
    $k = 0 if $k < 0;
    $k = $#lag if $k > $#lag;
    return $lag[$k] == 9**9**9 ? 'inf' : sprintf '%.1f', $lag[$k];
}
printf "puts %d\nfailed %d\nrate %.1f\nseen %d\nmissing %d\n",
    scalar(keys %answered), scalar(@fail),
    keys(%answered) / ($t_last - $t0 > 0 ? $t_last - $t0 : 1),
    scalar(keys %seen), $missing;
printf "p50 %s\np90 %s\np99 %s\nmax %s\n", pct(50), pct(90), pct(99), pct(100);
