# A node with a bad or incomplete configuration refuses to start, with a
# message that names the directive and says what to change.
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use lib 't/lib';
use CSTest qw(wait_for);
use CSNode;

my @cases = (
    [ 'no secret', sub { $_[0] =~ s/^ClusterStorageSecret .*$//m },
      qr/ClusterStorageSecret.*missing/ ],
    [ 'short secret', sub { $_[0] =~ s/^ClusterStorageSecret .*$/ClusterStorageSecret short/m },
      qr/ClusterStorageSecret must be at least 16 bytes/ ],
    [ 'no node', sub { $_[0] =~ s/^ClusterStorageNode .*$//m },
      qr/ClusterStorageNode NAME URL is missing/ ],
    [ 'bad node name', sub { $_[0] =~ s/^ClusterStorageNode \S+/ClusterStorageNode bad\/name/m },
      qr/ClusterStorageNode: NAME may only contain/ ],
    [ 'bad node URL', sub { $_[0] =~ s/^(ClusterStorageNode \S+) .*$/$1 ftp:\/\/x\/y/m },
      qr/ClusterStorageNode: URL .* must look like http:\/\/host:port/ ],
    [ 'no root', sub { $_[0] =~ s/^ClusterStorageRoot .*$//m },
      qr/ClusterStorageRoot DIR is missing/ ],
    [ 'missing root dir', sub { $_[0] =~ s/^ClusterStorageRoot .*$/ClusterStorageRoot \/nonexistent\/cs-root/m },
      qr/ClusterStorageRoot \/nonexistent\/cs-root does not exist/ ],
    [ 'bad replicas', sub { $_[0] =~ s/^ClusterStorageReplicas .*$/ClusterStorageReplicas zero/m },
      qr/ClusterStorageReplicas must be a number from 1 to 64/ ],
    [ 'bad timeout', sub { $_[0] =~ s/^ClusterStoragePeerTimeout .*$/ClusterStoragePeerTimeout soon/m },
      qr/ClusterStoragePeerTimeout: 'soon' must be a duration/ ],
    [ 'bad memcache', sub { $_[0] =~ s/^ClusterStorageMemcache .*$/ClusterStorageMemcache nohostport/m },
      qr/ClusterStorageMemcache: 'nohostport' is not HOST:PORT/ ],
    [ 'no mod_dbd', sub { $_[0] =~ s/^LoadModule dbd_module .*$//m;
                          $_[0] =~ s/^DBD\w+ .*$//mg },
      qr/mod_dbd is required/ ],
);

for my $c (@cases) {
    my ($what, $edit, $want) = @$c;
    (my $name = "s07-$what") =~ s/\W+/-/g;
    my $node = CSNode->new($name, edit => $edit);
    my ($rc, $out) = $node->try_start;
    isnt $rc, 0, "$what: httpd refuses to start";
    like $out, $want, "$what: the message says what to change"
        or diag $out;
    $node->kill9 if $rc == 0;
}

# A root on a file system without user extended attributes (ramfs,
# mounted by scripts/test.sh).
my $noxattr = $ENV{CS_MNT_NOXATTR};
ok $noxattr && -d $noxattr && -w $noxattr,
    'scripts/test.sh provided a file system without user xattrs'
    or diag 'run the suite as root through scripts/test.sh';
if ($noxattr) {
    my $node = CSNode->new('s07-noxattr', root => $noxattr);
    my ($rc, $out) = $node->try_start;
    isnt $rc, 0, 'a root without user xattrs: httpd refuses to start';
    like $out, qr/without user extended attributes/,
        'and says the file system lacks user xattrs' or diag $out;
    $node->kill9 if $rc == 0;
}

# And a good configuration does start (so the cases above test something).
my $ok = CSNode->new('s07-good');
my ($rc, $out) = $ok->try_start;
is $rc, 0, 'the unmodified configuration starts' or diag $out;
$ok->stop;

done_testing;
