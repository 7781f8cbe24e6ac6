# Replicas racing new writes on the same nodes (SPEC promises 1, 2 and 11):
# two nodes keep writing the same keys, so replicas of one node's versions
# arrive at the other just as it writes newer ones.  A holder row and a
# local copy only ever move forward in version, so when the writers stop,
# every key's last acknowledged version is served by both nodes and
# registered as held by both.
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use lib 't/lib';
use CSTest qw(req unique_key wait_for peer_auth);
use Digest::SHA qw(sha256_hex);
use IO::Socket::INET ();
use CSNode;
use File::Temp ();
use POSIX ();

my $A = CSNode->new('p46a', replicas => 2)->start;
my $B = CSNode->new('p46b', replicas => 2)->start;
my $base = '/files/' . unique_key('replace');
my @keys = map { "$base/$_.txt" } 1 .. 8;
my $rounds = 25;
my $out = File::Temp::tempdir(CLEANUP => 1);

# Each writer records every answer: key, status, version.
my @pids;
for my $w ([a => $A], [b => $B]) {
    my $pid = fork // die "fork: $!";
    if (!$pid) {
        open my $fh, '>', "$out/$w->[0]" or POSIX::_exit(1);
        for my $i (1 .. $rounds) {
            for my $k (@keys) {
                # Big enough that a replica is still on its way when the
                # node it goes to writes the next version itself.
                my $r = req(PUT => $w->[1]->url . $k,
                            "$w->[0] $i $k\n" x 4000);
                printf $fh "%s %d %s\n", $k, $r->code,
                    $r->header('X-ClusterStorage-Version') // 0;
            }
        }
        close $fh;
        POSIX::_exit(0);
    }
    push @pids, $pid;
}
waitpid($_, 0) for @pids;

my (%last, @failed);
for my $w (qw(a b)) {
    open my $fh, '<', "$out/$w" or die "no results of writer $w";
    while (<$fh>) {
        my ($k, $code, $v) = split;
        if ($code == 201 || $code == 204) {
            $last{$k} = $v if !$last{$k} || $v > $last{$k};
        }
        else {
            push @failed, "$w: $k $code";
        }
    }
}
is scalar(keys %last), scalar(@keys), 'every key has acknowledged versions';
note scalar(@failed) . ' PUTs were not acknowledged: ' . join(', ', @failed)
    if @failed;

# Replication settles: both queues empty.
ok wait_for(60, sub { !$A->queue_jobs && !$B->queue_jobs }),
    'both replication queues drained';
my @wrong;
for my $k (@keys) {
    for my $n ($A, $B) {
        my $r = req(GET => $n->url . $k);
        my $v = $r->header('X-ClusterStorage-Version') // 'none';
        push @wrong, sprintf('%s on %s: %d v%s (last acknowledged v%d)',
                             $k, $n->name, $r->code, $v, $last{$k})
            unless $r->code == 200 && $v eq $last{$k};
    }
}
is_deeply \@wrong, [], 'both nodes serve the last acknowledged version of every key'
    or diag $A->log_tail, $B->log_tail;
my @short;
ok wait_for(30, sub {
        @short = grep { my @h = $A->live_holders($_); @h < 2 } @keys;
        !@short }),
    'and both are registered as its holders'
    or diag explain [map { $A->entry($_) } @short];

# The same race made certain: a replica of v1 is on its way to D (its body
# half sent) when D itself stores v2 of the key; the rest of the replica
# arrives after.  D must keep v2.
my $S = CSNode->new('p46s', replicas => 1)->start;     # holds v1 alone
my $D = CSNode->new('p46d', replicas => 1)->start;
my $k = '/files/' . unique_key('inflight') . '.txt';
my $v1body = "version one\n" x 5000;
my $r = req(PUT => $S->url . $k, $v1body);
is $r->code, 201, 'v1 stored on S';
my $v1 = $r->header('X-ClusterStorage-Version');
# half_push(TO, KEY, VERSION, BODY, FROM) -> (socket, rest of BODY): a
# replica push from node FROM to node TO with the first half of its body.
sub half_push {
    my ($to, $key, $v, $body, $from) = @_;
    my ($port) = $to->url =~ /:(\d+)\z/;
    my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                     PeerPort => $port, Timeout => 30)
        or die "connect: $!";
    my $half = int(length($body) / 2);
    print $sock "PUT $key HTTP/1.1\r\nHost: 127.0.0.1:$port\r\n"
        . "X-ClusterStorage-Version: $v\r\n"
        . 'X-ClusterStorage-Auth: ' . peer_auth('PUT', $key, $v, node => $from) . "\r\n"
        . 'X-ClusterStorage-SHA256: ' . sha256_hex($body) . "\r\n"
        . 'Content-Length: ' . length($body) . "\r\nConnection: close\r\n\r\n"
        . substr($body, 0, $half);
    $sock->flush;
    return ($sock, substr($body, $half));
}
# finish_push(SOCKET, REST) -> the status code of the push's answer.
sub finish_push {
    my ($sock, $rest) = @_;
    print $sock $rest;
    $sock->flush;
    my $answer = do { local $/; <$sock> } // '';
    my ($code) = $answer =~ m{^HTTP/1\.\d (\d{3})};
    return $code // '';
}
my ($sock, $rest) = half_push($D, $k, $v1, $v1body, 'p46s');
$r = req(PUT => $D->url . $k, "version two\n");
is $r->code, 204, 'v2 stored on D while the replica of v1 is on its way';
my $v2 = $r->header('X-ClusterStorage-Version');
is finish_push($sock, $rest), 409, 'the late replica of v1 is refused (409)';
$r = req(GET => $D->url . $k);
is $r->content, "version two\n", 'D serves v2';
is $r->header('X-ClusterStorage-Version'), $v2, 'at version 2';
is_deeply [$S->live_holders($k)], ['p46d'], 'and D is registered as the holder of v2';

# A replica of v2 on its way to S (half sent) when the key is deleted on
# D; the rest arrives after the DELETE was answered.  S refuses it (409)
# and keeps nothing of it on disk: a copy of no version anyone reads.
($sock, $rest) = half_push($S, $k, $v2, "version two\n", 'p46d');
is req(DELETE => $D->url . $k)->code, 204,
    'the key is deleted on D while a replica of v2 is on its way to S';
is finish_push($sock, $rest), 409,
    'the late replica of the deleted version is refused (409)';
ok !-e $S->root . $k, 'and S holds no copy of the key on disk'
    or diag $S->log_tail;
is req(GET => $S->url . $k)->code, 404, 'S answers 404 for the deleted key';

done_testing;
