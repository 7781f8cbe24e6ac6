package CSFront;
# A round-robin balancer in front of cluster nodes (t/lib/front.conf.tmpl):
# its own httpd with mod_proxy_balancer, lbmethod=byrequests, proxying
# /dav, /files and /cluster-status to the member nodes, so that
# consecutive requests of a client land on different nodes.  Life-cycle as
# CSHttpd (->start, ->stop, stopped when the test file ends).
use strict;
use warnings;

use parent 'CSHttpd';

# CSFront->new(NAME, members => [ node base URLs ], edit => sub { ... },
#              port => PORT: a fixed port, e.g. the one an fstab entry names)
sub new {
    my ($class, $name, %opt) = @_;
    my @members = @{ $opt{members} || [] } or die "CSFront $name: no members";
    # retry=0: a member that once failed to connect is tried again on the
    # next request instead of being left out for a minute.
    my $lines = join "\n",
        map { "    BalancerMember $_ retry=0 timeout=60" } @members;
    my $self = $class->SUPER::new($name,
        template => 'front.conf.tmpl',
        vars     => { MEMBERS => $lines },
        dirs     => ['htdocs'],
        edit     => $opt{edit},
        port     => $opt{port});
    $self->{members} = [@members];
    return $self;
}

sub members { @{ $_[0]{members} } }

# served_by(QR) -> { member URL => how many requests the front sent there },
# counting the access log's requests whose path matches QR (all without).
sub served_by {
    my ($self, $qr) = @_;
    my %n;
    open my $fh, '<', $self->access_log or return \%n;
    while (my $l = <$fh>) {
        my ($path, $worker) = $l =~ /^\d+ \S+ (\S+) -> (\S+)$/ or next;
        next if $qr && $path !~ $qr;
        $n{$worker}++;
    }
    return \%n;
}

1;
