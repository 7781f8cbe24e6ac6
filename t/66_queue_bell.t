# The replication queue's drain runs on a thread of its own in one of the
# node's children and waits on the queue's bell, a pipe every child of the
# generation inherits; a writer rings it once its write commits.  That
# drain must survive what happens to children: the child running it is
# SIGKILLed (another child's thread takes over, on the same pipe), and a
# graceful restart must not leave an old child stuck in a drain that never
# returns (SPEC promise 9).  In each case new writes on A still get their
# second copy.
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use lib 't/lib';
use CSTest qw(req unique_key wait_for);
use CSNode;

my ($A, $B) = map { CSNode->new("r66$_", replicas => 2)->start } qw(a b);

my $n = 0;
sub writes_reach_b {
    my ($what) = @_;
    my @keys;
    for (1 .. 5) {
        my $k = '/files/' . unique_key('bell' . ++$n) . '.txt';
        my $r = req(PUT => $A->url . $k, "copy $n\n");
        is $r->code, 201, "$what: PUT $k on A";
        push @keys, $k;
    }
    # Two holders each: A and the node the key's placement names (B, or
    # the suite's own server).
    my @short;
    ok wait_for(20, sub { @short = grep { my @h = $A->live_holders($_); @h < 2 }
                                 @keys;
                          !@short }),
        "$what: each of the 5 keys has its second copy"
        or diag "one holder only: @short";
    ok wait_for(20, sub { !$A->queue_jobs }), "$what: A's queue is empty"
        or diag 'left: ' . join ' ', $A->queue_jobs;
}

writes_reach_b('at start');

# SIGKILL every child of A: the parent forks new ones, and one of their
# queue threads takes the drain over.
my @kids = $A->children;
ok @kids >= 2, 'A has ' . scalar(@kids) . ' children';
kill 'KILL', @kids;
ok wait_for(30, sub {
        my @now = $A->children;
        @now >= 2 && !grep { my $k = $_; grep { $_ == $k } @kids } @now
    }), "A's children were replaced";
ok wait_for(30, sub { req(GET => $A->url . '/cluster-status')->code == 200 }),
    'A answers again';
writes_reach_b('after its children were SIGKILLed');

# Graceful restart: the old children finish and exit; none stays in its
# drain.
@kids = $A->children;
kill 'USR1', $A->pid;
my @stuck;
ok wait_for(30, sub { @stuck = grep { kill 0, $_ } @kids; !@stuck }),
    'after a graceful restart every old child of A exited'
    or diag "still running: @stuck";
writes_reach_b('after a graceful restart');

my $log = do { local (@ARGV, $/) = $A->error_log; <> // '' };
unlike $log, qr/CS158|CS216/, 'no queue thread or bell failed on A';
# A drain that did not notice the child's exit would hold it up until the
# exit stops waiting for it (CS217).
unlike $log, qr/CS217/, "no child of A exited with its drain still running";

done_testing;
