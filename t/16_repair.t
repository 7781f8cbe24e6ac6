# Repair (SPEC §6 promise 6): when a holder goes away, the remaining holder
# copies the file to another node until ClusterStorageReplicas live holders
# exist again, without any client read.
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use lib 't/lib';
use CSTest qw(req unique_key wait_for storage_root file_sha256 tmp_files);
use CSNode;
use Digest::SHA qw(sha256_hex);

# A writes with replicas 1 (it never copies on its own); B wants 2 holders
# and becomes the second holder by reading the key; C is a bystander.
my $A = CSNode->new('n16a', replicas => 1);
my $B = CSNode->new('n16b', replicas => 2);
my $C = CSNode->new('n16c', replicas => 2);
$_->start for $A, $B, $C;

my $key = '/files/' . unique_key('repair') . '/r.bin';
my $body = join '', map { chr(($_ * 101) % 256) } 1 .. 250_000;
my $sha = sha256_hex($body);

my $r = req(PUT => $A->url . $key, $body);
is $r->code, 201, 'PUT on A';
my $v = $r->header('X-ClusterStorage-Version');
is req(GET => $B->url . $key)->code, 200, 'GET on B (B becomes a holder)';
ok wait_for(5, sub { join(',', $B->live_holders($key)) eq 'n16a,n16b' }),
    'A and B are the two live holders'
    or diag explain $B->entry($key);
# Stable: two holders, nobody copies it further.
my $repairs0 = $B->counter('repairs');

ok $A->kill9, 'holder A killed';

# Down after 3 heartbeats (3 s), repaired on a following sweep.
my @h;
ok wait_for(20, sub {
    @h = $B->live_holders($key);
    @h == 2 && !grep { $_ eq 'n16a' } @h;
}), 'two live holders again, without any read'
    or diag explain($B->entry($key)), $B->log_tail;
ok((grep { $_ eq 'n16b' } @h), 'B still holds it');
my ($new) = grep { $_ ne 'n16b' } @h;
ok defined $new && ($new eq 'n16c' || $new eq 'n1'),
    'the new holder is C or n1' or diag "holders: @h";
cmp_ok $B->counter('repairs') - $repairs0, '>', 0,
    "the surviving holder's repairs counter rose";

my $root = !defined $new ? undef
         : $new eq 'n1' ? storage_root('n1') : $C->root;
is file_sha256($root . $key), $sha, "the new holder's copy has the right bytes"
    if $root;
is $B->entry($key)->{version}, $v, 'of the current version';
is $C->counter('peer_fetches'), 0, 'C fetched nothing (no read happened)';
is_deeply [tmp_files('n16b'), tmp_files('n16c')], [], 'no temp files left';

done_testing;
