# A node that was down when a key was deleted drops its stale copy the next
# time the key is asked for; replication jobs queued while the database is
# down stay queued and are done when it is back (no restart).
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use lib 't/lib';
use CSTest qw(req unique_key wait_for svc);
use CSNode;

END { eval { svc('start-db') } }

my $a = CSNode->new('m19a', replicas => 1)->start;
my $b = CSNode->new('m19b', replicas => 1)->start;

# 1. Missed delete.
my $key = '/files/' . unique_key('missed') . '.txt';
is req(PUT => $a->url . $key, "doomed\n")->code, 201, 'stored on A';
is req(GET => $b->url . $key)->content, "doomed\n", 'B fetched a copy';
ok -f $b->root . $key, 'B holds a copy';
$b->stop;
is req(DELETE => $a->url . $key)->code, 204, 'deleted on A while B is down';
ok -f $b->root . $key, "B's stale copy is still on its disk";
$b->start;
is req(GET => $b->url . $key)->code, 404, 'B answers 404, not the stale copy';
ok !-e $b->root . $key, 'and B dropped its stale copy';

# 2. A replication job that cannot finish yet (more replicas wanted than
#    nodes are up) survives a database outage and finishes afterwards.
my $c = CSNode->new('m19c', replicas => 6)->start;
my $k2 = '/files/' . unique_key('outage') . '.txt';
is req(PUT => $c->url . $k2, "queued\n")->code, 201, 'stored on C (6 replicas wanted)';
ok wait_for(10, sub { scalar(my @h = $c->live_holders($k2)) >= 4 }),
    'replicated to every node that is up (4)';
ok scalar($c->queue_jobs), 'the job stays queued, waiting for more nodes';
svc('stop-db');
is req(PUT => $c->url . '/files/' . unique_key('nope'), "x")->code, 503,
    'database down: writes get 503';
ok wait_for(10, sub { !$c->status->{registry_reachable} }), 'C sees the outage';
ok scalar($c->queue_jobs), 'the job is still queued during the outage';
svc('start-db');
my $d = CSNode->new('m19d', replicas => 1)->start;
my $e = CSNode->new('m19e', replicas => 1)->start;
ok wait_for(30, sub { scalar(my @h = $c->live_holders($k2)) >= 6 }),
    'with the database back and two more nodes, 6 nodes hold it, no restart'
    or diag explain $c->entry($k2);
ok wait_for(10, sub { !$c->queue_jobs }), "and C's queue is empty";

$_->stop for $d, $e;
$_->stop for $a, $b, $c;
done_testing;
