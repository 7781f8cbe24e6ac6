# No lost acknowledged writes (SPEC §6 promise 2): a PUT answered by a
# writer that is SIGKILLed right after reaches ClusterStorageReplicas
# holders once enough nodes are up, with no operator action and no read;
# the writer's queue is empty afterwards.
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use lib 't/lib';
use CSTest qw(req unique_key wait_for storage_root file_sha256 tmp_files);
use CSNode;
use Digest::SHA qw(sha256_hex);

# W wants 3 holders; only W and n1 are up, so the job cannot finish yet.
my $W = CSNode->new('n14w', replicas => 3);
$W->start;
# (Nodes of earlier test files look up for 3 s after they stopped.)
my @up;
ok wait_for(10, sub {
    @up = sort map { $_->{name} } grep { $_->{state} eq 'up' }
          @{ ($W->status || {})->{nodes} || [] };
    "@up" eq 'n1 n14w';
}), 'only n1 and W are up' or diag "up: @up";

my $key = '/files/' . unique_key('crash') . '/payload.bin';
my $body = join '', map { chr(($_ * 37 + 11) % 256) } 1 .. 300_000;
my $sha = sha256_hex($body);

my $r = req(PUT => $W->url . $key, $body);
is $r->code, 201, 'PUT on W is 201';
my $v = $r->header('X-ClusterStorage-Version');
ok $W->kill9, 'W was killed with SIGKILL right after the answer';
ok scalar($W->queue_jobs), 'its replication job is on disk'
    or diag 'queue: ' . join ' ', $W->queue_jobs;

# A new node joins, and W comes back.
my $X = CSNode->new('n14x', replicas => 1);
$X->start;
$W->start;

my @h;
ok wait_for(30, sub { (@h = $X->live_holders($key)) >= 3 }),
    'the key reaches 3 live holders without any read'
    or diag explain($X->entry($key)), $W->log_tail;
is_deeply \@h, [qw(n1 n14w n14x)], 'W, n1 and X hold it';
my $e = $X->entry($key);
is $e->{version}, $v, 'the registry has the acknowledged version';
is $e->{sha256}, $sha, 'with its SHA-256';
is file_sha256($W->root . $key), $sha, "W's copy has the right bytes";
is file_sha256(storage_root('n1') . $key), $sha, "n1's copy too";
is file_sha256($X->root . $key), $sha, "X's copy too";

ok wait_for(10, sub { !$W->queue_jobs }), "W's queue is empty"
    or diag 'queue: ' . join ' ', $W->queue_jobs;
is_deeply [tmp_files('n14w'), tmp_files('n14x')], [], 'no temp files left';
is $X->counter('peer_fetches'), 0, 'X did not have to fetch (nobody read)';

done_testing;
