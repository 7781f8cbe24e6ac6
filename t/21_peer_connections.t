# Connections between nodes are kept alive and reused: many replications
# and fetches need only a few TCP connections (no TIME_WAIT socket per
# request), and a peer that closed its end meanwhile (a graceful restart)
# costs no failed request.
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use lib 't/lib';
use CSTest qw(req unique_key wait_for);
use CSNode;

my $a = CSNode->new('k21a', replicas => 2)->start;
my $b = CSNode->new('k21b', replicas => 2)->start;
my $base = '/files/' . unique_key('conn');
my $n = 30;

# 1. Replication A -> B: one push per PUT, over reused connections.
my %a0 = map { $_ => $a->counter($_) }
    qw(peer_requests peer_connects replications_done replications_failed);
my $ok = grep { req(PUT => $a->url . "$base/$_.txt", "body $_\n")->code == 201 } 1 .. $n;
is $ok, $n, "$n PUTs on A answered 201";
ok wait_for(30, sub { $a->counter('replications_done') >= $a0{replications_done} + $n }),
    "A replicated all $n to B";
my $reqs = $a->counter('peer_requests') - $a0{peer_requests};
my $conns = $a->counter('peer_connects') - $a0{peer_connects};
ok $reqs >= $n, "A made at least $n requests to B ($reqs)";
ok $conns <= 5, "... over $conns new connections";
is $a->counter('replications_failed'), $a0{replications_failed}, 'no replication failed'
    or diag $a->log_tail, $b->log_tail;

# 2. Fetches: C holds nothing and fetches every key from A or B.
my $c = CSNode->new('k21c', replicas => 2)->start;
my %c0 = map { $_ => $c->counter($_) } qw(peer_requests peer_connects peer_fetches);
$ok = grep { req(GET => $c->url . "$base/$_.txt")->content eq "body $_\n" } 1 .. $n;
is $ok, $n, "C served all $n keys";
is $c->counter('peer_fetches') - $c0{peer_fetches}, $n, "C fetched each of them once";
$conns = $c->counter('peer_connects') - $c0{peer_connects};
ok $conns <= 8, "C's $n fetches used $conns new connections";

# 3. B restarts gracefully (its children close their idle connections);
#    A's next push must not fail on the connection B closed.
ok req(PUT => $a->url . "$base/r1.txt", "r1\n")->code == 201, 'PUT r1 on A';
ok wait_for(10, sub { scalar(my @h = $a->live_holders("$base/r1.txt")) >= 2 }),
    'r1 reached B';
my $failed = $a->counter('replications_failed');
sub resumed { scalar grep { /resuming normal operations/ } do { local (@ARGV) = $b->error_log; <> } }
my $resumed = resumed();
kill 'USR1', $b->pid;   # graceful restart
ok wait_for(20, sub { resumed() > $resumed && $b->status }), 'B restarted gracefully';
is req(PUT => $a->url . "$base/r2.txt", "r2\n")->code, 201, 'PUT r2 on A right after';
ok wait_for(10, sub { scalar(my @h = $a->live_holders("$base/r2.txt")) >= 2 }),
    'r2 reached B';
is $a->counter('replications_failed'), $failed,
    'no push failed on the connection B had closed';
is req(GET => $b->url . "$base/r2.txt")->content, "r2\n", 'B serves r2';

$_->stop for $a, $b, $c;
done_testing;
