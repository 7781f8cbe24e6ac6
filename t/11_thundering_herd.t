# No thundering herd (SPEC §6 promise 4): 40 concurrent GETs on a node
# that lacks a file all get the right bytes, and cause exactly one peer
# transfer (one fetch on the cold node, one answer on the holder).
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use lib 't/lib';
use CSTest qw(req unique_key wait_for tmp_files);
use CSNode;
use Digest::SHA qw(sha256_hex);
use File::Temp qw(tempdir);
use POSIX ();
use IO::Socket::INET ();
use Time::HiRes ();

# A holds the file alone (replicas 1); B is cold.
my $A = CSNode->new('n11a', replicas => 1);
$A->start;
my $B = CSNode->new('n11b', replicas => 1);
$B->start;

my $key = '/files/' . unique_key('herd') . '.bin';
my $body = join '', map { chr((($_ * 131) >> 3) % 256) } 1 .. 1_000_000;
my $sha = sha256_hex($body);

my $r = req(PUT => $A->url . $key, $body);
is $r->code, 201, 'PUT of ~1 MB on A is 201';
my $v = $r->header('X-ClusterStorage-Version');
is_deeply [$A->live_holders($key)], ['n11a'], 'A is the only holder'
    or diag explain $A->entry($key);
ok !-e $B->root . $key, 'B has no copy yet';

my $fetches0 = $B->counter('peer_fetches');
my $served0  = $A->counter('peer_served');
ok defined $fetches0 && defined $served0, 'counters readable'
    or diag explain [$B->status, $A->status];

# 40 clients, released at the same moment through a pipe that the parent
# closes once all are forked.
my $N = 40;
my ($port) = $B->url =~ /:(\d+)\z/;
my $out = tempdir(CLEANUP => 1);
pipe(my $gate_r, my $gate_w) or die "pipe: $!";
my @pids;
for my $i (1 .. $N) {
    my $pid = fork;
    die "fork: $!" unless defined $pid;
    if (!$pid) {
        # Connect first, then wait at the gate: the requests then arrive
        # together instead of trickling in as the children get going.
        my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                      PeerPort => $port, Timeout => 30)
            or POSIX::_exit(1);
        # All of the request but its final CRLF goes out before the gate.
        syswrite $s, "GET $key HTTP/1.0\r\nHost: 127.0.0.1:$port\r\n";
        close $gate_w;
        my $go = <$gate_r>;     # EOF when the parent closes the gate
        my $t0 = Time::HiRes::time();
        syswrite $s, "\r\n";
        my $resp = '';
        while (1) {
            my $n = sysread $s, my $buf, 65536;
            last unless $n;
            $resp .= $buf;
        }
        my $t1 = Time::HiRes::time();
        my ($head, $c) = split /\r\n\r\n/, $resp, 2;
        $head //= '';
        $c //= '';
        my ($code) = $head =~ m{^HTTP/1\.\d (\d{3})};
        my ($got_v) = $head =~ /^X-ClusterStorage-Version: *(\S+)/mi;
        open my $fh, '>', "$out/$i" or POSIX::_exit(1);
        printf $fh "%s %s %s %d %.6f %.6f\n", $code // 0, sha256_hex($c),
            $got_v // '-', length $c, $t0, $t1;
        close $fh;
        POSIX::_exit(0);
    }
    push @pids, $pid;
}
close $gate_r;
close $gate_w;
waitpid $_, 0 for @pids;

my (%codes, $right, @bad, @spans);
for my $i (1 .. $N) {
    open my $fh, '<', "$out/$i" or do { push @bad, "$i: no result"; next };
    my $line = <$fh>;
    chomp $line;
    my ($code, $got_sha, $got_v, $len, $t0, $t1) = split / /, $line;
    push @spans, [$t0, $t1];
    $codes{$code}++;
    if ($code == 200 && $got_sha eq $sha && $got_v eq $v) {
        $right++;
    }
    else {
        push @bad, "$i: $line";
    }
}
is $right, $N, "all $N concurrent GETs on the cold node got 200 with the "
    . 'right bytes and version'
    or diag explain { codes => \%codes, bad => \@bad }, $B->log_tail;

# The herd really was one: several requests were in flight at the moment
# the first one was answered (else "one fetch" would prove nothing).  How
# many depends on the scheduler of a busy test machine; usually all 40.
my ($first_end) = sort { $a <=> $b } map { $_->[1] } @spans;
my $in_flight = grep { $_->[0] < $first_end } @spans;
cmp_ok $in_flight, '>=', 5, 'the requests overlapped'
    or diag "$in_flight in flight when the first answer arrived";
note "$in_flight requests in flight when the first answer arrived";

is $B->counter('peer_fetches') - $fetches0, 1,
    'the cold node made exactly one peer fetch'
    or diag $B->log_tail;
is $A->counter('peer_served') - $served0, 1,
    'the holder answered exactly one peer fetch'
    or diag $A->log_tail;
is sha256_hex(do { local $/; open my $fh, '<:raw', $B->root . $key; <$fh> }
              // ''), $sha, 'the cold node now holds the right bytes';
is_deeply [tmp_files('n11b')], [], 'no temp files left on the cold node';

# Later requests are local hits.
my $hits0 = $B->counter('hits');
is req(GET => $B->url . $key)->code, 200, 'another GET on B';
is $B->counter('peer_fetches') - $fetches0, 1, 'which was not fetched again';
is $B->counter('hits') - $hits0, 1, 'but served from the local copy';

done_testing;
